"""``g3w batch``: many tasks from a JSON Lines file through one listener, resumable (CONTRACT.md 6).

This module checks the file, resolves the options, opens the services and the one callback
channel, renders progress and writes the records; the engine is ``get3w_cli.batch``.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.batch_checks import (
    BatchOptions,
    check_changed,
    check_lines,
    check_name_template,
    check_out,
    check_retry_failed,
)
from get3w_cli.cli.batch_output import progress, record_sink, stopper
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.ci import batch_rows, batch_section
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import (
    AccountFlags,
    CiFlags,
    FlagGroup,
    JournalFlags,
    OutputFlags,
    RouteFlags,
    TalkFlags,
    WaitFlags,
    options,
)
from get3w_cli.cli.render import Ui
from get3w_cli.names import Via

if TYPE_CHECKING:
    from get3w_cli.batch.lines import CheckResult, LineDefaults
    from get3w_cli.batch.runner import BatchRunner, Connection
    from get3w_cli.cli.context import Services
    from get3w_cli.providers import Route
    from get3w_cli.tasks import WaitRequest

BATCH = "Batch options"


class BatchFlags(FlagGroup):
    """``g3w batch``'s own options."""

    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-j", min=1, max=C.BATCH_MAX_CONCURRENCY, metavar="N", rich_help_panel=BATCH,
        help=f"Tasks in flight at most (default {C.BATCH_DEFAULT_CONCURRENCY}; a 429 lowers it for a while).",
        show_default=False)] = C.BATCH_DEFAULT_CONCURRENCY
    out: Annotated[str | None, typer.Option(
        "--out", metavar="FILE", rich_help_panel=BATCH, show_default=False,
        help="Write the records (one JSON line per task) to FILE, rewritten by every run (default stdout).")] = None
    resume: Annotated[bool, typer.Option(
        "--resume", rich_help_panel=BATCH,
        help="Continue this batch: re-emit finished lines, wait for submitted ones, submit the rest.")] = False
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", rich_help_panel=BATCH, show_default=False,
        help="Name of the batch in the journal (default: the file's absolute path; stdin: the hash of its content).",
    )] = None
    resubmit_unknown: Annotated[bool, typer.Option(
        "--resubmit-unknown", rich_help_panel=BATCH,
        help="On --resume, send again lines whose submit got no answer (may pay twice).")] = False
    resubmit_changed: Annotated[bool, typer.Option(
        "--resubmit-changed", rich_help_panel=BATCH,
        help="On --resume, submit lines edited since they were submitted as new tasks (default: list them and exit 2).",
    )] = False
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", rich_help_panel=BATCH,
        help='Submit the valid lines; each invalid one gets a record with status "invalid" (default: exit 2, '
             "nothing sent).")] = False
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", rich_help_panel=BATCH,
        help="On --resume, submit the lines whose task failed (or was refused) again, as new tasks.")] = False
    name_template: Annotated[str | None, typer.Option(
        "--name-template", metavar="TEMPLATE", rich_help_panel=BATCH, show_default=False,
        help="Output file names with -o, e.g. '{key}_{index}.{ext}'; placeholders {key} (else the line number), "
             "{index}, {ext}, {id}, {line} (default '{id}_{index}.{ext}').")] = None


BatchFile = Annotated[str, typer.Argument(
    metavar="FILE", show_default=False,
    help='JSON Lines, one task a line: {"model", "input", "provider"?, "api"?, "key"?}; - reads stdin.')]


@app.command("batch", epilog=examples(
    ("16 at a time, records to a file, outputs to out/", "g3w batch jobs.jsonl -j 16 --out results.jsonl -o out/"),
    ("after Ctrl-C, a crash or kill -9", "g3w batch jobs.jsonl --resume"),
    ("lines from stdin, named for history", "cat jobs.jsonl | g3w batch - --name nightly"),
))
@options(hide=("json_out",))
def batch_cmd(file: BatchFile, *, batch: BatchFlags, wait: WaitFlags, output: OutputFlags, talk: TalkFlags,
              ci: CiFlags, route: RouteFlags, account: AccountFlags, journal: JournalFlags) -> None:
    """Run many tasks from a JSON Lines file: one listener, -j at once, resumable.

    Writes one task record per line (plus "key": the line's key, else its line number) as each
    finishes. A record's status may also be "unknown" (error.code "submit_unknown"): its submit
    got no answer, so it is not sent again unless --resubmit-unknown. --timeout is each line's
    deadline, its submit included: a line still rate limited then ends with error.code
    "rate_limited". A batch is known by --name, else by its file's path; one process runs it at
    a time. Exit 0 when every task completed, 9 when some did not (the records say why), 2 when
    the batch is running elsewhere or lines changed since they were submitted
    (--resubmit-changed), 130 on Ctrl-C (resume with --resume).
    """
    ui = Ui.for_talk(talk)
    tracker = Tracker(resume_hint=_resume_command(file, batch.name))

    async def body() -> int:
        return await _batch_flow(file, batch, wait, output, route, account, journal, ui)

    run(ui, body, tracker=tracker, ci=ci)


def _resume_command(file: str, name: str | None) -> str:
    command = f"g3w batch {shlex.quote(file)} --resume" + (f" --name {shlex.quote(name)}" if name else "")
    where = "the same lines on stdin and " if file == "-" else ""
    return f"resume with: {command} (with {where}the same options)"


@contextmanager
def _input_path(file: str) -> Iterator[Path]:
    """The file to read, or stdin spooled to a temporary file (removed afterwards; the spools of
    earlier ``batch -`` processes that were killed are removed first)."""
    from get3w_cli.batch.lines import remove_dead_spools, spool
    from get3w_cli.errors import UsageError

    if file != "-":
        if not Path(file).is_file():
            raise UsageError(f"no such file: {file}", hint="give a JSON Lines file, or - for stdin")
        yield Path(file)
        return
    remove_dead_spools()
    spooled = spool(sys.stdin.buffer)
    try:
        yield spooled
    finally:
        spooled.unlink(missing_ok=True)


def _connections(services: Services) -> Callable[[Route], Connection]:
    """Adapters per (provider, API); submits make one attempt each, so 429s reach the pacer."""
    from get3w_cli.batch.runner import Connection
    from get3w_cli.providers import make_adapter

    cache: dict[tuple[str, str], Connection] = {}

    def connect(route: Route) -> Connection:
        pair = (route.provider, route.api)
        if pair not in cache:
            cache[pair] = Connection(
                submit=make_adapter(pair, services.client(*pair, max_attempts=1)),
                wait=make_adapter(pair, services.client(*pair)), base_url=services.base_url(route.provider))
        return cache[pair]

    return connect


async def _batch_flow(file: str, batch: BatchFlags, wait: WaitFlags, output: OutputFlags, route: RouteFlags,
                      account: AccountFlags, journal: JournalFlags, ui: Ui) -> int:
    from get3w_cli.batch.lines import valid_lines
    from get3w_cli.batch.report import summary
    from get3w_cli.cli import resolve
    from get3w_cli.cli.context import Context, open_services
    from get3w_cli.errors import AuthError, BatchIncompleteError

    ctx = Context()
    access = resolve.access(ctx, account, journal, provider=route.provider, wait=wait, output=output,
                            many_requests=True)
    # The template first: a usage error leaves nothing behind (wait_request creates the -o folder).
    template = check_name_template(batch.name_template, output.output or access.settings.output)
    request = resolve.wait_request(ctx, access.settings, wait, output)
    with _input_path(file) as path:
        options = BatchOptions(file, path, batch.concurrency, batch.out, batch.resume, batch.name,
                               batch.resubmit_unknown, batch.resubmit_changed, batch.skip_invalid, route.api,
                               batch.retry_failed, template)
        check_out(ctx, options)
        check, defaults = check_lines(options, route.provider, access.settings.provider, ui)
        async with open_services(ctx, access) as services, AsyncExitStack() as stack:
            runner = await _runner(stack, services, check, defaults, options, request, ui)
            # CI: progress in a collapsible section; the batch's outputs and summary on the way out
            async with batch_section(runner.stats, options.out), progress(ui, runner.stats):
                try:
                    await runner.run(valid_lines(options.path, defaults, check.invalid_lines))
                except AuthError as exc:  # the key stopped working mid-batch: nothing is lost
                    exc.hint = f"{exc.hint}; then {_resume_command(options.file, options.name)}"
                    raise
    stats = runner.stats
    ui.note(summary(stats))
    if stats.done < stats.total:
        raise BatchIncompleteError(
            f"{stats.total - stats.done} of {stats.total} lines did not complete",
            hint="each record's status and error say why; --resume waits again for timed-out tasks "
                 "and submits lines that were never sent")
    return 0


async def _runner(stack: AsyncExitStack, services: Services, check: CheckResult, defaults: LineDefaults,
                  options: BatchOptions, request: WaitRequest, ui: Ui) -> BatchRunner:
    """Everything the run needs, checked and opened before the first line is sent."""
    from get3w_cli.batch.identity import batch_identity, check_may_run
    from get3w_cli.batch.ledger import Ledger
    from get3w_cli.batch.lines import invalid_lines, valid_lines
    from get3w_cli.batch.lock import batch_lock
    from get3w_cli.batch.report import Stats
    from get3w_cli.batch.runner import BatchConfig, BatchRunner
    from get3w_cli.journal import file_digest
    from get3w_cli.providers import Route

    journal, digest = services.journal, file_digest(options.path)
    name = batch_identity(journal, name=options.name, source=None if options.file == "-" else options.path,
                          digest=digest)
    if journal.path is not None:  # before the "already ran" check: two racing runs cannot both pass it
        stack.enter_context(batch_lock(journal.path.parent, name))
    if check_may_run(journal, name, resume=options.resume, notify=ui.notify):
        check_changed(journal, name, valid_lines(options.path, defaults, check.invalid_lines), options, ui)
        check_retry_failed(journal, name, valid_lines(options.path, defaults, check.invalid_lines), options, ui)
    connect = _connections(services)
    for provider, api in sorted(check.routes):  # every key is checked before anything is sent
        connect(Route(provider, api, ""))
    mode, channel = await _open_channel(stack, services, check, request, ui)
    sink = batch_rows(stack.enter_context(record_sink(options.out, stopper(ui))))  # CI: summary rows too
    ledger = Ledger(services.journal, name, Stats(total=check.valid), sink)
    for problem in invalid_lines(options.path, defaults) if check.invalid else ():
        ledger.invalid(problem)  # --skip-invalid: a record each, first
    services.journal.batch_open(name, source="<stdin>" if options.file == "-" else options.file, digest=digest,
                                total=check.valid)
    config = BatchConfig(name=name, concurrency=options.concurrency, mode=mode, plan=request.plan,
                         callback_url=channel.url if channel else None,
                         output_dir=Path(request.output_dir) if request.output_dir else None,
                         resume=options.resume, resubmit_unknown=options.resubmit_unknown,
                         resubmit_changed=options.resubmit_changed, retry_failed=options.retry_failed,
                         name_template=options.name_template)
    ui.note(f"batch {name}: {check.valid} lines, {options.concurrency} at a time, via {mode}")
    return BatchRunner(config, ledger=ledger, connect=connect, session=services.session,
                       inbox=channel.inbox if channel else None, notify=ui.notify)


async def _open_channel(stack: AsyncExitStack, services: Services, check: CheckResult,
                        request: WaitRequest, ui: Ui) -> tuple[str, Any]:
    """The one listener (and tunnel) of the batch, for every provider it uses."""
    from get3w_cli.tasks import choose_mode, open_channel_for

    providers = sorted({provider for provider, _ in check.routes})
    secrets = {p: s for p in providers if (s := services.webhook_secret(p))}
    channel_opts = dataclasses.replace(request.channel, secrets=secrets,
                                       provider_urls=tuple(services.base_url(p) for p in providers))
    request = dataclasses.replace(request, channel=channel_opts)
    mode = choose_mode(request.via, channel_opts, ui.notify, timeout=request.plan.timeout)
    channel = await open_channel_for(stack, mode, request, ui.notify)
    return (Via.POLL if mode == Via.WEBHOOK and channel is None else mode), channel



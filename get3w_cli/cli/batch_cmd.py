"""``g3w batch``: many tasks from a JSON Lines file through one listener, resumable (CONTRACT.md 6).

This module checks the file, resolves the options, opens the services and the one callback
channel, renders progress and writes the records; the engine is ``get3w_cli.batch``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Optional

import typer

from get3w_cli import constants as C
from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.render import Ui, describe_duration

if TYPE_CHECKING:
    from get3w_cli.batch.lines import CheckResult
    from get3w_cli.batch.report import Stats
    from get3w_cli.batch.runner import BatchRunner, Connection
    from get3w_cli.cli.context import Services
    from get3w_cli.cli.flows import WaitRequest
    from get3w_cli.providers import Route

BATCH = "Batch"


@app.command("batch")
def batch_cmd(
    file: str = typer.Argument(..., help="JSON Lines, one task a line: {\"model\", \"input\", \"provider\"?, \"api\"?, \"key\"?}; - reads stdin."),
    concurrency: int = typer.Option(C.BATCH_DEFAULT_CONCURRENCY, "--concurrency", "-j", min=1, max=C.BATCH_MAX_CONCURRENCY, help="Tasks in flight at most (a 429 lowers it for a while).", rich_help_panel=BATCH),
    out: Optional[str] = typer.Option(None, "--out", help="Write the records (one JSON line per task) to FILE, rewritten by every run (default stdout).", rich_help_panel=BATCH),
    resume: bool = typer.Option(False, "--resume", help="Continue this batch: re-emit finished lines, wait for submitted ones, submit the rest.", rich_help_panel=BATCH),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the batch in the journal (default: the hash of the file).", rich_help_panel=BATCH),
    resubmit_unknown: bool = typer.Option(False, "--resubmit-unknown", help="On --resume, send again lines whose submit got no answer (may pay twice).", rich_help_panel=BATCH),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Submit the valid lines and report the invalid ones (default: exit 2, nothing sent).", rich_help_panel=BATCH),
    via: O.ViaOpt = None,
    timeout: O.Timeout = None,
    fallback_after: O.FallbackAfter = None,
    poll_max: O.PollMax = "10s",
    tunnel: O.Tunnel = O.TunnelKind.auto,
    public_url: O.PublicUrl = None,
    listen_host: O.ListenHost = "127.0.0.1",
    listen_port: O.ListenPort = 0,
    webhook_secret: O.WebhookSecret = None,
    on_timeout: O.OnTimeoutOpt = O.OnTimeout.detach,
    output: O.Output = None,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
    no_history: O.NoHistory = False,
) -> None:
    """Run many tasks from a JSON Lines file: one listener, -j at once, resumable.

    Writes one task record per line (plus "key": the line's key, else its line number) as each
    finishes. A record's status may also be "unknown" (error.code "submit_unknown"): its submit
    got no answer, so it is not sent again unless --resubmit-unknown. Exit 0 when every task
    completed, 9 when some did not (the records say why), 130 on Ctrl-C (resume with --resume).
    """
    ui = Ui(quiet=quiet, debug=debug)
    tracker = Tracker(resume_hint=_resume_command(file, name))

    async def body() -> int:
        from get3w_cli.cli.context import Flags
        from get3w_cli.cli.task_cmds import build_wait_request

        flags = Flags(provider=provider.value if provider else None, api_key=api_key, base_url=base_url,
                      webhook_secret=webhook_secret, via=via.value if via else None, timeout=timeout,
                      no_history=no_history, sandbox=sandbox)
        request = build_wait_request(flags, fallback_after=fallback_after, poll_max=poll_max, tunnel=tunnel,
                                     public_url=public_url, listen_host=listen_host, listen_port=listen_port,
                                     on_timeout=on_timeout, output=output)
        with _input_path(file) as path:
            options = _Options(file, path, concurrency, out, resume, name, resubmit_unknown, skip_invalid,
                               api.value if api else None)
            return await _batch_flow(flags, options, request, ui)

    run(ui, body, tracker=tracker)


@dataclasses.dataclass(frozen=True)
class _Options:
    file: str
    path: Path
    concurrency: int
    out: str | None
    resume: bool
    name: str | None
    resubmit_unknown: bool
    skip_invalid: bool
    api: str | None


def _resume_command(file: str, name: str | None) -> str:
    command = f"g3w batch {shlex.quote(file)} --resume" + (f" --name {shlex.quote(name)}" if name else "")
    where = "the same lines on stdin and " if file == "-" else ""
    return f"resume with: {command} (with {where}the same options)"


@contextmanager
def _input_path(file: str) -> Iterator[Path]:
    """The file to read, or stdin spooled to a temporary file (removed afterwards)."""
    from get3w_cli.batch.lines import spool
    from get3w_cli.errors import UsageError

    if file != "-":
        if not Path(file).is_file():
            raise UsageError(f"no such file: {file}", hint="give a JSON Lines file, or - for stdin")
        yield Path(file)
        return
    spooled = spool(sys.stdin.buffer)
    try:
        yield spooled
    finally:
        spooled.unlink(missing_ok=True)


def _check(options: _Options, flags: Any, ui: Ui) -> tuple[CheckResult, Any]:
    """Check every line before anything is sent: exit 2 with the list, or skip them."""
    from get3w_cli.batch.lines import LineDefaults, check_file
    from get3w_cli.cli.context import settings_from
    from get3w_cli.errors import UsageError

    defaults = LineDefaults(provider=flags.provider, api=options.api, fallback_provider=settings_from(flags).provider)
    result = check_file(options.path, defaults)
    for problem in result.problems:
        ui.err.print(str(problem), markup=False, highlight=False)
    if result.invalid > len(result.problems):
        ui.err.print(f"... and {result.invalid - len(result.problems)} more invalid lines", markup=False)
    if result.invalid and not options.skip_invalid:
        raise UsageError(f"{result.invalid} invalid line(s) in {options.file}; nothing was submitted",
                         hint="fix them, or pass --skip-invalid to submit the valid lines only")
    if result.invalid:
        ui.warn(f"skipping {result.invalid} invalid line(s)")
    if not result.valid:
        raise UsageError(f"{options.file} has no task lines", hint='one JSON object a line: {"model": ..., "input": {...}}')
    return result, defaults


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


async def _batch_flow(flags: Any, options: _Options, request: WaitRequest, ui: Ui) -> int:
    from get3w_cli.batch.lines import valid_lines
    from get3w_cli.batch.report import summary
    from get3w_cli.cli.context import many_requests_backend, open_services
    from get3w_cli.errors import AuthError, BatchIncompleteError

    check, defaults = _check(options, flags, ui)
    async with open_services(flags, provider=flags.provider, backend=many_requests_backend()) as services, AsyncExitStack() as stack:
        runner = await _runner(stack, services, check, options, request, ui)
        async with _progress(ui, runner.stats):
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


async def _runner(stack: AsyncExitStack, services: Services, check: CheckResult, options: _Options,
                  request: WaitRequest, ui: Ui) -> BatchRunner:
    """Everything the run needs, checked and opened before the first line is sent."""
    from get3w_cli.batch.ledger import Ledger, batch_name
    from get3w_cli.batch.lines import file_digest
    from get3w_cli.batch.report import Stats
    from get3w_cli.batch.runner import BatchConfig, BatchRunner
    from get3w_cli.providers import Route

    digest = file_digest(options.path)
    name = batch_name(services.journal, name=options.name, digest=digest, resume=options.resume, notify=ui.notify)
    connect = _connections(services)
    for provider, api in sorted(check.routes):  # every key is checked before anything is sent
        connect(Route(provider, api, ""))
    mode, channel = await _open_channel(stack, services, check, request, ui)
    ledger = Ledger(services.journal, name, Stats(total=check.valid), stack.enter_context(_record_sink(options.out, _stopper(ui))))
    services.journal.batch_open(name, source="<stdin>" if options.file == "-" else options.file, digest=digest,
                                total=check.valid)
    config = BatchConfig(name=name, concurrency=options.concurrency, mode=mode, plan=request.plan,
                         callback_url=channel.url if channel else None,
                         output_dir=Path(request.output_dir) if request.output_dir else None,
                         resume=options.resume, resubmit_unknown=options.resubmit_unknown)
    ui.note(f"batch {name}: {check.valid} lines, {options.concurrency} at a time, via {mode}")
    return BatchRunner(config, ledger=ledger, connect=connect, session=services.session,
                       inbox=channel.inbox if channel else None, notify=ui.notify)


async def _open_channel(stack: AsyncExitStack, services: Services, check: CheckResult,
                        request: WaitRequest, ui: Ui) -> tuple[str, Any]:
    """The one listener (and tunnel) of the batch, for every provider it uses."""
    from get3w_cli.callbacks import webhook_possible
    from get3w_cli.cli.flows import open_channel_for
    from get3w_cli.waiting import POLL, WEBHOOK

    providers = sorted({provider for provider, _ in check.routes})
    secrets = {p: s for p in providers if (s := services.webhook_secret(p))}
    channel_opts = dataclasses.replace(request.channel, secrets=secrets,
                                       provider_urls=tuple(services.base_url(p) for p in providers))
    request = dataclasses.replace(request, channel=channel_opts)
    mode = request.via
    if mode == "auto":
        mode = WEBHOOK if webhook_possible(channel_opts) else POLL
    channel = await open_channel_for(stack, mode, request, ui)
    return (POLL if mode == WEBHOOK and channel is None else mode), channel


def _stopper(ui: Ui) -> Callable[[str], None]:
    """Stop the batch the way Ctrl-C does (the resume command is printed on the way out)."""
    import asyncio

    main = asyncio.current_task()

    def stop(message: str) -> None:
        ui.warn(message)
        if main is not None:
            main.cancel()

    return stop


@contextmanager
def _record_sink(out: str | None, on_broken: Callable[[str], None]) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Where records go: --out FILE (rewritten by every run) or stdout; one flushed line each.

    When the reader of stdout goes away (``| head``) or the file cannot be written, the sink
    stops writing and calls ``on_broken`` (which stops the batch the way Ctrl-C does): what is
    journalled is safe, and ``--resume`` re-emits it. It never raises into the engine.
    """
    from get3w_cli.errors import UsageError

    try:
        handle: IO[str] = open(out, "w", encoding="utf-8") if out and out != "-" else sys.stdout  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    broken = False

    def write(record: dict[str, Any]) -> None:
        nonlocal broken
        if broken:
            return
        try:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            handle.flush()
        except OSError as exc:
            broken = True
            if handle is sys.stdout:  # keep the interpreter's last flush from failing again
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            on_broken(f"cannot write records to {'stdout' if handle is sys.stdout else out} "
                      f"({exc.strerror or exc}); stopping the batch")

    try:
        yield write
    finally:
        if handle is not sys.stdout:
            handle.close()


def _progress_text(stats: Stats) -> str:
    eta = stats.eta()
    return (f"{stats.done} done · {stats.failed} failed · {stats.in_flight} in flight · {stats.queued} queued · "
            f"{stats.rate():.1f}/s · ETA {describe_duration(eta) if eta is not None else '-'}")


@asynccontextmanager
async def _progress(ui: Ui, stats: Stats) -> AsyncIterator[None]:
    """A live bar on a terminal, a plain line every BATCH_PROGRESS_INTERVAL otherwise, nothing if quiet."""
    import asyncio  # here, not at the top: `g3w --help` must not pay for asyncio

    if ui.quiet:
        yield
        return
    if not ui.animated:
        ticker = asyncio.ensure_future(_plain_progress(ui, stats))
        try:
            yield
        finally:
            ticker.cancel()
        return
    from rich.progress import BarColumn, Progress, TextColumn

    bar = Progress(TextColumn("batch"), BarColumn(bar_width=C.BATCH_PROGRESS_BAR_WIDTH),
                   TextColumn("{task.completed}/{task.total} · {task.description}"), console=ui.err, transient=True)
    task = bar.add_task(_progress_text(stats), total=stats.total)

    async def refresh() -> None:
        while True:
            bar.update(task, completed=stats.finished, description=_progress_text(stats))
            await asyncio.sleep(C.BATCH_PROGRESS_REFRESH)

    with bar:
        ticker = asyncio.ensure_future(refresh())
        try:
            yield
        finally:
            ticker.cancel()


async def _plain_progress(ui: Ui, stats: Stats) -> None:
    import asyncio

    while True:
        await asyncio.sleep(C.BATCH_PROGRESS_INTERVAL)
        ui.note(f"batch: {stats.finished}/{stats.total} · {_progress_text(stats)}")

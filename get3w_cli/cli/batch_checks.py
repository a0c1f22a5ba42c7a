"""``g3w batch``'s checks before anything is written or sent: the lines, ``--out``,
``--name-template``, the lines edited since an earlier run submitted them, and those that
``--retry-failed`` submits again."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.cli.render import Ui

if TYPE_CHECKING:
    from get3w_cli.batch.lines import BatchLine, CheckResult, LineDefaults
    from get3w_cli.cli.context import Context
    from get3w_cli.downloads import NameTemplate
    from get3w_cli.journal import Journal


@dataclass(frozen=True)
class BatchOptions:
    """The batch's own flags, resolved."""

    file: str
    path: Path
    concurrency: int
    out: str | None
    resume: bool
    name: str | None
    resubmit_unknown: bool
    resubmit_changed: bool
    skip_invalid: bool
    api: str | None
    retry_failed: bool = False
    name_template: NameTemplate | None = None


def check_lines(options: BatchOptions, provider: str | None, fallback_provider: str | None, ui: Ui
                ) -> tuple[CheckResult, LineDefaults]:
    """Check every line before anything is sent: exit 2 with the list, or skip them. ``provider``
    (--provider) applies like a line's own; ``fallback_provider`` (settings) to unprefixed models."""
    from get3w_cli.batch.lines import LineDefaults, check_file
    from get3w_cli.errors import UsageError

    if options.retry_failed and not options.resume:
        raise UsageError("--retry-failed applies to a batch that ran before: add --resume")
    defaults = LineDefaults(provider=provider, api=options.api, fallback_provider=fallback_provider)
    result = check_file(options.path, defaults)
    for problem in result.problems:
        ui.err.print(str(problem), markup=False, highlight=False)
    if result.invalid > len(result.problems):
        ui.err.print(f"... and {result.invalid - len(result.problems)} more invalid lines", markup=False)
    if result.invalid and not options.skip_invalid:
        raise UsageError(f"{result.invalid} invalid line(s) in {options.file}; nothing was submitted",
                         hint="fix them, or pass --skip-invalid to submit the valid lines only")
    if result.invalid:
        ui.warn(f"skipping {result.invalid} invalid line(s); each gets a record with status invalid")
    if not result.valid:
        raise UsageError(f"{options.file} has no task lines",
                         hint='one JSON object a line: {"model": ..., "input": {...}}')
    return result, defaults


def check_changed(journal: Journal, name: str, lines: Iterable[BatchLine], options: BatchOptions, ui: Ui) -> None:
    """Lines edited since they were submitted: listed, then exit 2 before anything is sent,
    unless --resubmit-changed (then they are submitted as new tasks, and said so)."""
    from get3w_cli.batch.identity import changed_lines
    from get3w_cli.errors import UsageError

    changed = changed_lines(journal, name, lines)
    if not changed.count:
        return
    what = "submitting it again as a new task" if options.resubmit_changed else "changed since it was submitted"
    for line in changed.shown:
        key = f" (key {line.key})" if line.key is not None else ""
        ui.err.print(f"line {line.number}{key}: {what}", markup=False, highlight=False)
    if len(changed.shown) < changed.count:
        ui.err.print(f"... and {changed.count - len(changed.shown)} more changed lines", markup=False)
    if not options.resubmit_changed:
        raise UsageError(f"{changed.count} line(s) of batch {name} changed since they were submitted; "
                         "nothing was submitted",
                         hint="pass --resubmit-changed to submit them as new tasks (their earlier tasks stay in "
                              "the journal), or restore them")
    ui.warn(f"{changed.count} changed line(s) will be submitted as new tasks")


def check_name_template(template: str | None, output_dir: str | None) -> NameTemplate | None:
    """--name-template, parsed and tried on a sample (it names files, so it needs -o DIR).

    Raises:
        UsageError: a bad template, or one without an output folder.
    """
    from get3w_cli.downloads import NameTemplate
    from get3w_cli.errors import UsageError

    if template is None:
        return None
    if not output_dir:
        raise UsageError("--name-template names downloaded files: add -o DIR (or set defaults.output)")
    return NameTemplate.parse(template)


def check_retry_failed(journal: Journal, name: str, lines: Iterable[BatchLine], options: BatchOptions,
                       ui: Ui) -> None:
    """--retry-failed: list the failed lines that will be submitted again, as new tasks."""
    from get3w_cli.batch.identity import failed_lines

    if not options.retry_failed:
        return
    failed = failed_lines(journal, name, lines)
    for line in failed.shown:
        key = f" (key {line.key})" if line.key is not None else ""
        ui.err.print(f"line {line.number}{key}: failed before; submitting it again as a new task", markup=False,
                     highlight=False)
    if len(failed.shown) < failed.count:
        ui.err.print(f"... and {failed.count - len(failed.shown)} more failed lines", markup=False)
    if failed.count:
        ui.warn(f"{failed.count} failed line(s) will be submitted again as new tasks (paid again; their failed "
                "tasks stay in the journal)")
    else:
        ui.note(f"batch {name} has no failed lines to retry")


def check_out(ctx: Context, options: BatchOptions) -> None:
    """--out naming a file the batch reads (the input, the journal, the config) would empty it
    before it is read: exit 2 before anything is written or sent."""
    from get3w_cli.cli.context import JOURNAL_FILE, SANDBOX_STATE_FILE
    from get3w_cli.errors import UsageError

    if not options.out or options.out == "-":
        return
    state = ctx.state_dir()
    reads = [("the batch's input", options.path), ("the config file", ctx.config_path()),
             ("the sandbox's state", state / SANDBOX_STATE_FILE),
             *(("the journal", state / f"{JOURNAL_FILE}{suffix}") for suffix in ("", "-wal", "-shm"))]
    for what, path in reads:
        if _same_file(Path(options.out), path):
            raise UsageError(f"--out {options.out} is {what}; nothing was written or sent",
                             hint="write the records to another file")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (also through links), existing or not."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False

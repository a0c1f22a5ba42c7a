"""The one error boundary: the single ``asyncio.run`` of a command, errors to exit codes.

Ctrl-C and SIGTERM cancel the command's main task, so every ``async with`` below closes
what it opened (listener, tunnel, sandbox); then the ids of the tasks still running are
printed with the command that resumes them. Under CI (``cli.ci``, imported only then) the same
records and errors also become step outputs, a summary and annotations.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from get3w_cli.errors import ExitCode, G3wError, plain_reason

if TYPE_CHECKING:
    import logging

    from get3w_cli.cli.ci import Ci
    from get3w_cli.cli.options import CiFlags
    from get3w_cli.cli.render import Ui


@dataclass
class Tracker:
    """The tasks this command knows of: what an exit (any exit) must still tell the user.

    ``record`` keeps each task's latest record; on the way out the boundary prints every record
    not printed yet (``render``: the task record with --json, else its outputs or files), so a
    script reads the id on stdout whether the task completed, failed, timed out or was
    interrupted. Unfinished ones are named with the command that resumes them.
    """

    running: dict[str, None] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    printed: set[str] = field(default_factory=set)
    cancel_on_interrupt: bool = False
    resume_hint: str | None = None
    # A server (listen, sandbox, relay): Ctrl-C is how it is meant to stop, not an error; it has
    # printed its summary on the way out, and exits 130 without an "Error: interrupted".
    serving: bool = False
    render: Callable[[Ui, dict[str, Any]], None] | None = None
    order: tuple[str, ...] = ()  # ids to print first, in this order (``wait ID ID``: the arguments')

    def record(self, record: dict[str, Any]) -> None:
        task_id = record.get("id")
        if not task_id:
            return
        self.records[task_id] = record
        if record.get("status") in _FINAL:
            self.running.pop(task_id, None)
        else:
            self.running[task_id] = None

    def ordered(self) -> list[dict[str, Any]]:
        """The latest record of each task: those named in ``order`` first, then as reported."""
        first = [self.records[task_id] for task_id in self.order if task_id in self.records]
        return first + [record for task_id, record in self.records.items() if task_id not in self.order]

    def print_records(self, ui: Ui) -> None:
        """Print (once) the record of every task this command reported."""
        from get3w_cli.cli.render import print_task_result

        for record in self.ordered():
            task_id = record["id"]
            if task_id not in self.printed:
                self.printed.add(task_id)
                (self.render or print_task_result)(ui, record)


_FINAL = frozenset({"completed", "failed", "cancelled"})


async def _guarded(factory: Callable[[], Awaitable[int]]) -> int:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    installed: list[signal.Signals] = []

    def interrupt(signum: int) -> None:
        main.cancel()
        # A second Ctrl-C gets Python's default behaviour: an immediate KeyboardInterrupt.
        loop.remove_signal_handler(signum)

    if sys.platform != "win32":
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt, signum)
            installed.append(signum)
    try:
        return await factory()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def report_interrupt(ui: Ui, tracker: Tracker) -> None:
    ui.stop_progress()
    # --on-timeout cancel: a task the interrupt cancelled has a final record, and is still named.
    cancelled = [task_id for task_id, record in tracker.records.items()
                 if tracker.cancel_on_interrupt and record.get("status") == "cancelled"]
    if not tracker.running and not cancelled and not tracker.resume_hint and not tracker.serving:
        ui.error("interrupted")
    for task_id in cancelled:
        ui.error(f"interrupted; task {task_id} was cancelled", hint=f"check with: g3w get {task_id}")
    for task_id in tracker.running:
        if tracker.cancel_on_interrupt:
            ui.error(f"interrupted; asked the provider to cancel task {task_id} unless it had finished",
                     hint=f"check with: g3w get {task_id}")
        else:
            ui.error(f"interrupted; task {task_id} was not cancelled", hint=f"resume with: g3w wait {task_id}")
    if tracker.resume_hint:
        ui.error("interrupted", hint=tracker.resume_hint)


def configure_logging(debug: bool, ui: Ui | None = None) -> None:
    """Library logs (g3w.*, pyngrok, aiohttp) reach stderr as plain lines: warnings, or all with --debug.

    Every line goes through ``redact``: --debug output is pasted into bug reports, and libraries
    log what they send (httpx: a v1 submit's URL, carrying the callback URL and its token).
    With ``ui``, lines are printed through it, so that they go above its spinner, never into it.
    """
    import logging

    class ThroughUi(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            assert ui is not None
            try:
                ui.log_line(self.format(record))
            except Exception:  # noqa: BLE001 - logging's rule: a handler that fails reports it, never raises
                self.handleError(record)

    handler = logging.StreamHandler() if ui is None else ThroughUi()
    handler.setFormatter(redacting_formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    # pyngrok logs the agent's errors itself; g3w classifies them into one message with a hint.
    # Above CRITICAL: pyngrok logs the agent's own "lvl=crit" lines at CRITICAL (escapes and all).
    # Set either way: a command run after another in one process must not inherit its level.
    logging.getLogger("pyngrok").setLevel(logging.NOTSET if debug else logging.CRITICAL + 1)


def _flush(ui: Ui, tracker: Tracker) -> None:
    """Print the records not printed yet; a reader that went away (``| head``) is not an error."""
    from get3w_cli.cli.render import StdoutClosed

    ui.stop_progress()
    try:
        tracker.print_records(ui)
    except StdoutClosed:
        pass


def redacting_formatter(fmt: str) -> logging.Formatter:
    """A log formatter whose whole output (message, arguments, traceback) has the secrets masked."""
    import logging

    from get3w_cli.redaction import redact

    class Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return Redacting(fmt)


def report_error(ui: Ui, message: str, hint: str | None, *, with_traceback: bool) -> None:
    """An error, and with --debug the traceback being handled, on stderr with the secrets masked."""
    import traceback

    from get3w_cli.redaction import redact

    ui.error(redact(message), redact(hint) if hint else None)
    if with_traceback:
        ui.err.print(redact(traceback.format_exc()), markup=False)


_frozen = False


def _freeze_start_up() -> None:
    """Freeze what start-up built (it lives to the end: later collections skip it, see cli.main).

    Once per process: a second command in the same process (the test suite runs many) would
    otherwise freeze the first one's garbage too, and it could never be collected.
    """
    import gc

    global _frozen  # noqa: PLW0603 - once per process, whichever command runs first
    if not _frozen:
        _frozen = True
        gc.freeze()


def _ci_hooks(ui: Ui, flags: CiFlags | None) -> Ci | None:
    """The CI integrations, when a CI is detected or --dotenv is given (else not even imported)."""
    import os

    dotenv = flags.dotenv if flags else None
    if not dotenv and os.environ.get("GITHUB_ACTIONS") != "true" and os.environ.get("GITLAB_CI") != "true":
        return None
    from get3w_cli.cli.app import loaded
    from get3w_cli.cli.ci import Ci

    return Ci(loaded[-1] if loaded else "", os.environ, no_ci=bool(flags and flags.no_ci), dotenv=dotenv,
              warn=ui.warn)


def _error(ui: Ui, hooks: Ci | None, message: str, hint: str | None) -> None:
    report_error(ui, message, hint, with_traceback=ui.debug)
    if hooks is not None:
        from get3w_cli.redaction import redact

        hooks.error(redact(message), redact(hint) if hint else None)


def run(ui: Ui, factory: Callable[[], Awaitable[int]], *, tracker: Tracker | None = None,
        ci: CiFlags | None = None) -> NoReturn:
    """Run a command's coroutine once and exit with the contract's code (``ci``: its --no-ci, --dotenv)."""
    # Imported here, not at the top: `g3w --help` must not pay for asyncio.
    import asyncio
    import gc

    from get3w_cli.cli.render import StdoutClosed

    tracker = tracker or Tracker()
    _freeze_start_up()
    gc.enable()
    configure_logging(ui.debug, ui)
    hooks = _ci_hooks(ui, ci)
    try:
        if hooks is not None:
            hooks.start()
        code = asyncio.run(_guarded(factory))
        _flush(ui, tracker)
    except G3wError as exc:
        _flush(ui, tracker)
        _error(ui, hooks, exc.message, exc.hint)
        code = int(exc.exit_code)
    except (KeyboardInterrupt, asyncio.CancelledError):
        _flush(ui, tracker)
        report_interrupt(ui, tracker)
        if hooks is not None:
            resume = tracker.resume_hint or "; ".join(f"resume with: g3w wait {task}" for task in tracker.running)
            hooks.error("interrupted", resume or None)
        code = int(ExitCode.INTERRUPTED)
    except StdoutClosed:
        code = int(ExitCode.OK)  # `g3w ... | head -1`: the reader has what it wanted
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit 70
        _flush(ui, tracker)
        _error(ui, hooks, f"internal error: {plain_reason(exc)}",
               "this is a bug in g3w; rerun with --debug and report it")
        code = int(ExitCode.INTERNAL)
    finally:
        if hooks is not None:
            hooks.finish_tasks(tracker.ordered())
            hooks.close()
    raise typer.Exit(code)

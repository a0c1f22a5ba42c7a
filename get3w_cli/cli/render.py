"""All terminal output: data on stdout, talk on stderr (rich, animated only on a terminal).

The only module that styles text, with its helpers ``progress`` (the live spinner and download
bars), ``preview`` (images drawn in the terminal) and ``listen_output`` (event columns).
``--quiet`` silences talk but never errors; ``NO_COLOR`` and a non-terminal stderr mean no
colour and no animation.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from get3w_cli import constants as C

if TYPE_CHECKING:
    from get3w_cli.cli.options import TalkFlags
    from get3w_cli.cli.progress import Activity
    from get3w_cli.http.failures import Retrying

# What only the spinner shows (CONTRACT 2: progress goes to stderr only on a terminal).
SPINNER_ONLY = frozenset({"phase", "status", "progress", "retry"})


def escape(text: str) -> str:
    """Escape rich markup in server or user text (rich is imported only when output happens)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class StdoutClosed(BrokenPipeError):
    """The reader of stdout went away (``g3w history --json | head -1``): not an error of g3w."""


def write_stdout(text: str) -> None:
    """Write and flush ``text`` on stdout, the one way g3w writes data.

    Raises:
        StdoutClosed: the reader went away (stdout then points at /dev/null, so that the
            interpreter's last flush does not fail again).
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise StdoutClosed(*exc.args) from exc


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Ui:
    """One per command: where talk, data and progress go."""

    def __init__(self, *, quiet: bool = False, json_mode: bool = False, debug: bool = False) -> None:
        self.quiet, self.json_mode, self.debug = quiet, json_mode, debug
        # Not a terminal: no colour, no animation, and no rich at all (not even its import).
        self.plain_err = not _isatty(sys.stderr)
        dumb = os.environ.get("TERM", "").lower() in ("dumb", "unknown")
        self.animated = not self.plain_err and not quiet and not dumb
        self._err: Any = None
        self._activity: Activity | None = None

    @classmethod
    def for_talk(cls, talk: TalkFlags) -> Ui:
        """The Ui a command's --json / --quiet / --debug ask for."""
        return cls(quiet=talk.quiet, json_mode=talk.json_out, debug=talk.debug)

    @property
    def err(self) -> Any:
        """The rich console on stderr, built on first use."""
        if self._err is None:
            from rich.console import Console

            no_color = bool(os.environ.get("NO_COLOR")) or self.plain_err
            self._err = Console(stderr=True, highlight=False, no_color=no_color, soft_wrap=True)
        return self._err

    # --- stdout: data ---------------------------------------------------------------
    def data(self, line: str) -> None:
        write_stdout(line + "\n")

    def json(self, obj: Any) -> None:
        self.data(json.dumps(obj, ensure_ascii=False, default=str))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
              whole: Sequence[str] = (), droppable: Sequence[str] = ()) -> None:
        """A rich table on a terminal; tab-separated lines with a header when piped (like gh).

        On a terminal the ``whole`` columns are never cut nor wrapped (a model name must stay
        typeable); the ``droppable`` ones wrap, and are left out when the terminal is too narrow;
        narrower still, each row is one line of its other cells, wrapped by the terminal.
        """
        if not sys.stdout.isatty():
            for row in [columns, *rows]:
                self.data("\t".join("" if v is None else str(v) for v in row))
            return
        from rich.console import Console
        from rich.table import Table

        out = Console(highlight=False, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=False)
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
        kept = [i for i, name in enumerate(columns) if name not in droppable]
        # Each column costs its cell padding and a border (3), plus the table's outer border.
        needed = sum(widths[i] + 3 for i in kept) + 1
        if whole and needed > out.width:  # no table fits: one line a row, which the terminal wraps whole
            for row in cells:
                out.print(escape("  ".join(row[i] for i in kept if row[i])), soft_wrap=True)
            return
        shown = kept if needed + C.TABLE_DROPPABLE_MIN_WIDTH > out.width else list(range(len(columns)))
        table = Table(title=title)
        for i in shown:
            keep = columns[i] in whole
            table.add_column(columns[i], no_wrap=keep, min_width=widths[i] if keep else None,
                             overflow="fold")
        for row in cells:
            table.add_row(*(escape(row[i]) for i in shown))
        out.print(table)

    # --- stderr: talk ----------------------------------------------------------------
    def _talk(self, style: str | None, prefix: str, text: str) -> None:
        """One line on stderr: styled by rich on a terminal, written as is otherwise (fast, for floods)."""
        if self.plain_err:
            sys.stderr.write(f"{prefix}{text}\n")
            sys.stderr.flush()
        else:
            head = f"[{style}]{prefix}[/]" if style and prefix else prefix
            self.err.print(head + escape(text), style="dim" if style is None and self.animated else None)

    def note(self, text: str) -> None:
        if not self.quiet:
            self._talk(None, "", text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self._talk("yellow", "Warning: ", text)

    def success(self, text: str) -> None:
        if not self.quiet:
            self._talk("green", "✓ ", text)

    def hint(self, text: str) -> None:
        if not self.quiet:
            self._talk("cyan", "Hint: ", text)

    def raw(self, text: str) -> None:
        """Escape sequences (an inline image) written to the terminal on stderr as they are."""
        sys.stderr.write(text)
        sys.stderr.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        self.stop_progress()
        self._talk("bold red", "Error: ", message)
        if hint:
            self._talk("cyan", "Hint: ", hint)

    def notify(self, kind: str, text: str) -> None:
        """The callback the core calls: phases, the provider's status, a stream's percentage and
        retries change the spinner's line (on a terminal; elsewhere they are not printed);
        notes and warnings are printed."""
        if kind in SPINNER_ONLY:
            if self._activity is not None:
                self._activity.say(kind, text)
        elif kind == "warn":
            self.warn(text)
        else:
            self.note(text)

    def retrying(self, retry: Retrying) -> None:
        """The HTTP layer's ``on_retry`` hook: the spinner says why and what comes next."""
        self.notify("retry", describe_retry(retry))

    def log_line(self, text: str) -> None:
        """A library's log line: above the spinner while one is up (never run into it)."""
        if self._activity is not None:
            self.err.print(text, markup=False, highlight=False, style=None)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    # --- progress ----------------------------------------------------------------------
    def phase(self, text: str) -> None:
        self.notify("phase", text)

    @contextmanager
    def activity(self, first_phase: str) -> Iterator[None]:
        """A spinner with the phase and the elapsed time, on a terminal only."""
        if not self.animated:
            yield
            return
        from get3w_cli.cli.progress import Activity

        self._activity = Activity(self.err, first_phase)
        try:
            with self._activity:
                yield
        finally:
            self._activity = None

    def stop_progress(self) -> None:
        if self._activity is not None:
            self._activity.stop()
            self._activity = None

    def download_progress(self, name: str) -> Callable[[int, int | None], None]:
        """A progress callback for one download: a bar (bytes, speed, ETA) for large files on a terminal."""
        activity = self._activity
        if activity is None:
            return _no_progress
        return activity.download(name)


def _no_progress(done: int, total: int | None) -> None:
    pass


def describe_retry(retry: Retrying) -> str:
    """``rate limited, retrying in 3 s`` or ``connection refused, retry 2 of 5`` (``... in 4 s``)."""
    if retry.rate_limited:
        return f"rate limited, retrying in {retry.delay:.0f} s"
    later = f" in {retry.delay:.0f} s" if retry.delay >= 1 else ""
    return f"{retry.reason}, retry {retry.next_attempt} of {retry.max_attempts}{later}"


def print_task_result(ui: Ui, record: Mapping[str, Any]) -> None:
    """stdout for one finished task: the record with --json, else one URL (or file) a line."""
    if ui.json_mode:
        ui.json(record)
        return
    for line in record.get("files") or record.get("outputs") or []:
        ui.data(line)


def describe_duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else time.strftime("%Hh%Mm%Ss", time.gmtime(seconds))

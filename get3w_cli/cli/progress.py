"""The live progress of one command on a terminal: a spinner that says what is happening, and
download bars (bytes, speed, ETA) under it.

The spinner's line reads ``<phase> · <provider status> · <stream percentage> · <retry>``: the
phase comes from the core's ``notify("phase")``, the status from ``notify("status")`` (each
snapshot of the task), the percentage from ``notify("progress")`` (``--via stream``) and the
retry from the HTTP layer's ``on_retry`` hook ("rate limited, retrying in 3 s"). A new phase or
status clears a retry that has been answered since.

Only imported when stderr is an animated terminal (rich is never loaded otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from get3w_cli import constants as C

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

PHASE, DOWNLOAD = "phase", "download"
SEPARATOR = " · "


class _Only(ProgressColumn):
    """``column`` on the rows of one kind (the spinner row, or download rows), blank on the others."""

    def __init__(self, kind: str, column: ProgressColumn) -> None:
        super().__init__()
        self.kind, self.column = kind, column

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("kind") != self.kind:
            return Text("")
        return self.column.render(task)


class _SizedOnly(_Only):
    """A column that means something only when the download's size is known (the bar, the ETA)."""

    def render(self, task: Task) -> RenderableType:
        if task.total is None:
            return Text("")
        return super().render(task)


class Activity:
    """The spinner row and the download rows of one command (one rich Progress, transient)."""

    def __init__(self, console: Console, first_phase: str) -> None:
        self.progress = Progress(
            _Only(PHASE, SpinnerColumn()),
            TextColumn("{task.description}"),
            _Only(PHASE, TimeElapsedColumn()),
            _SizedOnly(DOWNLOAD, BarColumn(bar_width=C.PROGRESS_BAR_WIDTH)),
            _Only(DOWNLOAD, DownloadColumn()),
            _Only(DOWNLOAD, TransferSpeedColumn()),
            _SizedOnly(DOWNLOAD, TimeRemainingColumn()),
            console=console, transient=True,
            # stdout carries data: it must never be drawn on the terminal's stderr display.
            redirect_stdout=False, redirect_stderr=True,
        )
        self.parts: dict[str, str] = {"phase": first_phase}
        self.row = self.progress.add_task(self._line(), total=None, kind=PHASE)

    def __enter__(self) -> Activity:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.progress.stop()

    def say(self, part: str, text: str) -> None:
        """Set one part of the spinner's line ("phase", "status", "progress", "retry")."""
        if part == "phase":
            # A new phase starts afresh: the last status and percentage belong to the one before.
            self.parts = {"phase": text, "status": self.parts.get("status", "")}
        else:
            self.parts[part] = text
        if part in ("phase", "status", "progress"):
            self.parts.pop("retry", None)  # something was answered since the retry was announced
        self.progress.update(self.row, description=self._line())

    def _line(self) -> str:
        order = ("phase", "status", "progress", "retry")
        return escape(SEPARATOR.join(self.parts[p] for p in order if self.parts.get(p)))

    def download(self, name: str) -> Callable[[int, int | None], None]:
        """A callback ``(done, total)`` for one download: its row appears once it is worth a row."""
        state: dict[str, Any] = {}

        def update(done: int, total: int | None) -> None:
            if "row" not in state:
                if (total if total is not None else done) < C.DOWNLOAD_PROGRESS_MIN_BYTES:
                    return
                state["row"] = self.progress.add_task(escape(name), total=total, kind=DOWNLOAD)
            self.progress.update(state["row"], completed=done)

        return update

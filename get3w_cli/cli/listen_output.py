"""The lines ``g3w listen`` prints for each unique event: aligned columns, the status in colour on
a terminal, and a long error wrapped between words under them (never cut mid-word at 80 columns).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from get3w_cli.constants import LISTEN_UNKNOWN_WORDS_MAX

if TYPE_CHECKING:
    from get3w_cli.cli.render import Ui
    from get3w_cli.webhooks.receiver import Event


# The columns of an event line: (width, style); the detail (outputs or error) comes last.
_COLUMNS = ((8, "dim"), (8, None), (20, "bold"), (10, None), (10, None))
_STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "magenta", "processing": "cyan",
                 "created": "blue"}


def event_cells(event: Event) -> tuple[list[tuple[str, str | None]], str]:
    """An event's columns (text, style): local time, provider, id, status, verified|unverified;
    and its detail: the error, or the number of outputs of a final event."""
    from get3w_cli.webhooks.http_common import one_line

    task = event.task
    if task.error is not None:
        detail = task.error.message
    elif task.status.terminal:
        detail = f"{len(task.outputs)} output{'s' if len(task.outputs) != 1 else ''}"
    else:
        detail = ""
    status = task.status.value
    cells = [(time.strftime("%H:%M:%S", time.localtime(event.raw.received_at)), None), (event.provider, None),
             (task.id, None), (status, _STATUS_STYLE.get(status)),
             ("verified", "green") if event.verified else ("unverified", "yellow")]
    # The id and the error come from whoever posted: one short line, no control characters.
    return [(one_line(text), style) for text, style in cells], one_line(detail)


def event_line(event: Event) -> str:
    """``<time>  <provider>  <id>  <status>  verified|unverified  <outputs or error>``, in columns."""
    cells, detail = event_cells(event)
    head = "  ".join(text.ljust(width) for (text, _), (width, _) in zip(cells, _COLUMNS, strict=True))
    return f"{head}  {detail}".rstrip()


def _styled_line(ui: Ui, event: Event) -> None:
    """An event on a terminal: coloured columns; a detail that does not fit goes on the next line,
    indented and wrapped between words (never a word cut at the window's edge)."""
    from rich.padding import Padding
    from rich.text import Text

    cells, detail = event_cells(event)
    head = Text()
    for (text, style), (width, column_style) in zip(cells, _COLUMNS, strict=True):
        head.append(text.ljust(width) + "  ", style=style or column_style)
    head.rstrip()
    width = ui.err.size.width
    if detail and head.cell_len + 2 + len(detail) <= width:
        head.append("  " + detail)
        detail = ""
    ui.err.print(head, soft_wrap=False, overflow="fold")
    if detail:
        ui.err.print(Padding(Text(detail, style="red" if event.task.error else ""), (0, 0, 0, 4)),
                     soft_wrap=False, overflow="fold")


def show(ui: Ui, event: Event, said: set[str] | None = None) -> None:
    """The stderr line of one unique event, and its --json line on stdout (a reader that went away
    raises StdoutClosed, which ends the command quietly). A status word g3w does not know is
    mentioned once (``said``: the words already mentioned; the event says ``processing``, as
    CONTRACT.md section 1 maps it)."""
    word = event.task.unknown_status
    if said is not None and word is not None and word not in said and len(said) < LISTEN_UNKNOWN_WORDS_MAX:
        from get3w_cli.records import unknown_status_note
        from get3w_cli.webhooks.http_common import one_line

        said.add(word)
        ui.note(one_line(unknown_status_note(event.task) or word))  # the word comes from whoever posted
    if not ui.quiet:
        if ui.plain_err:
            ui.note(event_line(event))
        else:
            _styled_line(ui, event)
    if ui.json_mode:
        ui.json(event.as_json())

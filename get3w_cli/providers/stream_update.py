"""``StreamUpdate``: one event of a streamed submit, whatever shape its provider sent it in.

Its own module, loaded only by a streamed run: a dataclass on the import path of every command
costs start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from get3w_cli.records import Status, TaskError


@dataclass(frozen=True)
class StreamUpdate:
    """One event of a streamed submit, whichever shape it came in (None: the event does not say)."""

    task_id: str | None = None
    status: Status | None = None
    progress: float | None = None  # a fraction, 0 to 1
    outputs: tuple[str, ...] = ()
    error: TaskError | None = None
    log: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


__all__ = ["Status", "StreamUpdate", "TaskError"]

"""Typed records shared by every layer: task status, the task snapshot, the task record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from get3w_cli.constants import STATUS_WORD_MAX_CHARS


class Status(str, Enum):
    """The contract's status vocabulary (CONTRACT.md section 1)."""

    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


_STATUS_WORDS = {
    "created": Status.CREATED,
    "pending": Status.CREATED,
    "queued": Status.CREATED,
    "processing": Status.PROCESSING,
    "running": Status.PROCESSING,
    "completed": Status.COMPLETED,
    "succeeded": Status.COMPLETED,
    "success": Status.COMPLETED,
    "failed": Status.FAILED,
    "error": Status.FAILED,
    "timeout": Status.FAILED,
    "expired": Status.FAILED,
    "aborted": Status.FAILED,
    "cancelled": Status.CANCELLED,
    "canceled": Status.CANCELLED,
    "deleted": Status.CANCELLED,
}


def parse_status(word: object) -> tuple[Status, str | None]:
    """Map a provider's status word onto the vocabulary, and return the word when it is unknown.

    Failed: ``failed``, ``error``, ``timeout``, ``expired``, ``aborted``; cancelled: ``cancelled``,
    ``canceled``, ``deleted`` (Get3W v3's answer to a DELETE). Unknown words count as processing
    (CONTRACT.md section 1); the second item is the word,
    made printable and short, so that the waiter can say it did not know it. A missing status
    (None or "") is not a word: processing, and nothing to say.
    """
    if word is None or word == "":
        return Status.PROCESSING, None
    if isinstance(word, str):
        known = _STATUS_WORDS.get(word.strip().lower())
        if known is not None:
            return known, None
    text = "".join(ch if ch.isprintable() else "?" for ch in str(word))
    if len(text) > STATUS_WORD_MAX_CHARS:
        text = text[: STATUS_WORD_MAX_CHARS - 1] + "…"
    return Status.PROCESSING, text


def normalize_status(word: object) -> Status:
    """Map a provider's status word onto the vocabulary; unknown words count as processing."""
    return parse_status(word)[0]


@dataclass(frozen=True)
class TaskError:
    code: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Task:
    """One provider's view of a task, parsed from its JSON (the JSON itself is in ``raw``)."""

    id: str
    provider: str
    api: str
    model: str
    status: Status
    outputs: tuple[str, ...] = ()
    error: TaskError | None = None
    created_at: str | None = None
    completed_at: str | None = None
    estimated_duration: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The provider's status word when it is not one g3w knows (``status`` is then processing).
    unknown_status: str | None = None
    # How far the task got, a fraction 0-1, when a stream said so (``--via stream``); else None.
    progress: float | None = None

    def record(
        self,
        *,
        input: Mapping[str, Any] | None = None,
        via: str | None = None,
        files: list[str] | None = None,
        elapsed_s: float | None = None,
    ) -> dict[str, Any]:
        """Return the contract's task record (CONTRACT.md section 4)."""
        out: dict[str, Any] = {
            "id": self.id,
            "provider": self.provider,
            "api": self.api,
            "model": self.model,
            "status": self.status.value,
            "outputs": list(self.outputs),
        }
        if files is not None:
            out["files"] = files
        out.update(
            error=self.error.as_dict() if self.error else None,
            via=via,
            input=dict(input or {}),
            created_at=self.created_at,
            completed_at=self.completed_at,
            elapsed_s=None if elapsed_s is None else round(elapsed_s, 3),
            raw=dict(self.raw),
        )
        if self.progress is not None:
            out["progress"] = round(self.progress, 3)
        return out


NO_OUTPUTS = "no_outputs"  # error.code of a task that completed without outputs (CONTRACT.md section 2)


def mark_no_outputs(task: Task) -> Task:
    """A completed task without outputs keeps its status, with ``error.code`` ``no_outputs``: a
    script that asked for an image did not get one (exit 1; ``raise_unless_completed``)."""
    if task.status is Status.COMPLETED and not task.outputs:
        from dataclasses import replace

        return replace(task, error=TaskError(NO_OUTPUTS, "no outputs (the provider's safety filter often does this)"))
    return task


def raise_unless_completed(task: Task) -> None:
    """Exit 1 for a failed or cancelled task, or a completed one without outputs.

    Raises:
        TaskFailedError: the task did not complete, or completed without outputs.
    """
    from get3w_cli.errors import TaskFailedError

    if task.status is not Status.COMPLETED:
        raise TaskFailedError(task)
    if task.error is not None and task.error.code == NO_OUTPUTS:
        raise TaskFailedError(task, hint="try another prompt or other inputs")


def unknown_status_note(task: Task) -> str | None:
    """What g3w says (once) about a status word it does not know, or None when it knows it."""
    if not task.unknown_status:
        return None
    return f"task {task.id}: unknown status {task.unknown_status!r} from {task.provider}; counting it as processing"


def utc_now_iso() -> str:
    """Now, as the ISO-8601 UTC string the task record uses."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

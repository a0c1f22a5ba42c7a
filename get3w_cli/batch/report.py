"""What a batch reports: its counters (for the progress display) and its output records.

Every finished line gives one record: the task record of CONTRACT.md section 4 plus ``key``.
A line that never got a task (rejected at submit, or whose submit went unanswered) gets the
same shape with ``"id": null`` (or the id when known). Beyond the contract's vocabulary, a
batch record's ``status`` may be ``"unknown"``: the submit may have reached the provider
without an answer, and the line is not resubmitted unless ``--resubmit-unknown`` is given
(``error.code`` is then ``"submit_unknown"``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from get3w_cli.batch.lines import BatchLine
from get3w_cli.records import Status, Task, TaskError, utc_now_iso

# Line states in the journal (see journal/batches.py).
SUBMITTING, SUBMITTED, DONE, FAILED, UNKNOWN = "submitting", "submitted", "done", "failed", "unknown"
UNKNOWN_STATUS = "unknown"

# error.code values of batch records that are g3w's, not the provider's.
SUBMIT_UNKNOWN = "submit_unknown"
SUBMIT_FAILED = "submit_failed"
RATE_LIMITED = "rate_limited"  # still throttled (or unsent) when the line's --timeout ran out
REJECTED = "rejected"
TIMEOUT = "timeout"
WAIT_FAILED = "wait_failed"
DOWNLOAD_FAILED = "download_failed"


@dataclass
class Stats:
    """Live counters of one batch run; the CLI renders them, the runner updates them."""

    total: int  # valid lines in the file
    done: int = 0  # completed
    failed: int = 0  # finished without completing (failed, cancelled, timed out, unknown, ...)
    unknown: int = 0  # of ``failed``: submits with no answer
    in_flight: int = 0  # being submitted or waited for
    throttled: int = 0  # 429 answers (each retried, none failed a line)
    resumed: int = 0  # finished lines re-emitted from the journal
    started_at: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def queued(self) -> int:
        return max(0, self.total - self.finished - self.in_flight)

    def rate(self, now: float | None = None) -> float:
        """Lines finished per second by this run (re-emitted ones do not count)."""
        elapsed = (time.monotonic() if now is None else now) - self.started_at
        worked = self.finished - self.resumed
        return worked / elapsed if elapsed > 0 and worked > 0 else 0.0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until every line is finished at the current rate, or None when unknown."""
        rate = self.rate(now)
        return (self.total - self.finished) / rate if rate > 0 else None


def with_key(record: dict[str, Any], line: BatchLine) -> dict[str, Any]:
    record["key"] = line.out_key
    return record


def task_record(line: BatchLine, task: Task, *, via: str | None = None, files: list[str] | None = None,
                elapsed: float | None = None, error: tuple[str, str] | None = None) -> dict[str, Any]:
    """The record of a line with a task snapshot; ``error`` (code, message) replaces the task's."""
    if task.status is Status.COMPLETED and not task.completed_at:
        task = dataclasses.replace(task, completed_at=utc_now_iso())
    record = with_key(task.record(input=line.input, via=via, files=files, elapsed_s=elapsed), line)
    if error is not None:
        record["error"] = {"code": error[0], "message": error[1]}
    return record


def bare_record(line: BatchLine, status: str, code: str | None, message: str, *,
                task_id: str | None = None) -> dict[str, Any]:
    """The record of a line that has no (final) task snapshot: same shape, no outputs."""
    route = line.route
    stand_in = Task(id="", provider=route.provider, api=route.api, model=route.model,
                    status=Status.FAILED, error=TaskError(code, message))
    record = stand_in.record(input=line.input)
    record.update(id=task_id, status=status)
    return with_key(record, line)


def unknown_record(line: BatchLine, message: str, *, task_id: str | None = None) -> dict[str, Any]:
    return bare_record(line, UNKNOWN_STATUS, SUBMIT_UNKNOWN, message, task_id=task_id)


def summary(stats: Stats) -> str:
    """One line for the end of a run."""
    parts = [f"{stats.done} completed", f"{stats.failed} not completed"]
    if stats.unknown:
        parts.append(f"{stats.unknown} unknown")
    if stats.throttled:
        parts.append(f"{stats.throttled} rate-limited submits retried")
    return f"{stats.finished} of {stats.total} lines: " + ", ".join(parts)

"""What a batch reports: its counters (for the progress display and the summary) and its
output records.

Every finished line gives one record: the task record of CONTRACT.md section 4 plus ``key``.
A line that never got a task (rejected at submit, or whose submit went unanswered) gets the
same shape with ``"id": null`` (or the id when known). Beyond the contract's vocabulary, a
batch record's ``status`` may be ``"unknown"``: the submit may have reached the provider
without an answer, and the line is not resubmitted unless ``--resubmit-unknown`` is given
(``error.code`` is then ``"submit_unknown"``); or ``"invalid"``: a line skipped by
``--skip-invalid`` (``error.code`` ``"invalid_line"``, the reason in ``error.message``), so that
a join of the input and the output by key loses no line.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from get3w_cli.batch.lines import BatchLine, LineProblem
from get3w_cli.constants import BATCH_SUMMARY_KEYS_SHOWN
from get3w_cli.journal import LINE_STATES
from get3w_cli.records import Status, Task, TaskError, utc_now_iso

# Line states in the journal (see journal/batches.py).
SUBMITTING, SUBMITTED, DONE, FAILED, UNKNOWN = LINE_STATES
UNKNOWN_STATUS = "unknown"
INVALID_STATUS = "invalid"  # a line --skip-invalid skipped: never submitted

# error.code values of batch records that are g3w's, not the provider's.
SUBMIT_UNKNOWN = "submit_unknown"
SUBMIT_FAILED = "submit_failed"
RATE_LIMITED = "rate_limited"  # still throttled (or unsent) when the line's --timeout ran out
REJECTED = "rejected"
TIMEOUT = "timeout"
WAIT_FAILED = "wait_failed"
DOWNLOAD_FAILED = "download_failed"
INVALID_LINE = "invalid_line"


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
    invalid: int = 0  # lines skipped by --skip-invalid (not in ``total``)
    started_at: float = field(default_factory=time.monotonic)
    # The keys (line numbers for lines without one) of the first lines that did not complete,
    # and of the first invalid ones: the summary names a few.
    missed: list[str | int] = field(default_factory=list)
    skipped: list[str | int] = field(default_factory=list)

    def did_not_complete(self, key: str | int) -> None:
        self.failed += 1
        if len(self.missed) < BATCH_SUMMARY_KEYS_SHOWN:
            self.missed.append(key)

    def skipped_invalid(self, key: str | int) -> None:
        self.invalid += 1
        if len(self.skipped) < BATCH_SUMMARY_KEYS_SHOWN:
            self.skipped.append(key)

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


def invalid_record(problem: LineProblem) -> dict[str, Any]:
    """The record of a line skipped as invalid: what the line said (each field only if it has
    the right type, else null), status ``invalid``, the reason as the error."""
    fields = problem.fields or {}

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    values = fields.get("input")
    stand_in = Task(id="", provider="", api="", model="", status=Status.FAILED,
                    error=TaskError(INVALID_LINE, str(problem)))
    record = stand_in.record(input=values if isinstance(values, dict) else {})
    record.update(id=None, provider=text("provider"), api=text("api"), model=text("model"), status=INVALID_STATUS,
                  key=problem.out_key)
    return record


def summary(stats: Stats) -> str:
    """The end of a run: the counts, then the keys of the lines that did not complete and of
    those skipped as invalid (a few of each, then how many more)."""
    parts = [f"{stats.done} completed", f"{stats.failed} not completed"]
    if stats.unknown:
        parts.append(f"{stats.unknown} unknown")
    if stats.throttled:
        parts.append(f"{stats.throttled} rate-limited submits retried")
    lines = [f"{stats.finished} of {stats.total} lines: " + ", ".join(parts)
             + (f"; {stats.invalid} invalid line(s) skipped" if stats.invalid else "")]
    if stats.failed:
        lines.append("did not complete: " + _named(stats.missed, stats.failed))
    if stats.invalid:
        lines.append("skipped as invalid: " + _named(stats.skipped, stats.invalid))
    return "\n".join(lines)


def _named(keys: list[str | int], count: int) -> str:
    """``k1, line 7, k9 and 12 more``: keys as given, lines without a key by number."""
    shown = ", ".join(f"line {key}" if isinstance(key, int) else key for key in keys)
    return shown + (f" and {count - len(keys)} more" if count > len(keys) else "")

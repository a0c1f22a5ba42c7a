"""Idempotent re-runs (CONTRACT.md section 11): a retried CI step never pays again.

A key names one request. The key and the request's hash (provider, API, model, inputs; a file
to upload counts by its content's digest, as its URL changes with every upload) are journalled
with the task before its POST, and the key goes with the POST as an ``Idempotency-Key`` header.
Run again with the key:

- the same request: nothing is submitted; the journalled task is reused (the caller prints it,
  downloads it again, or waits for it);
- the earlier submit got no answer (``unknown``; or ``submitting``: a process killed during its
  POST, or another one sending it right now): exit 6, unless ``resubmit_unknown``;
- another request: exit 2, nothing sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import SubmitUnknownError, UsageError
from get3w_cli.records import Task, TaskError, normalize_status

if TYPE_CHECKING:
    from get3w_cli.journal import Journal, JournalEntry
    from get3w_cli.tasks.requests import TaskSpec

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Claim:
    """What a key says about a submit: ``reuse`` this journalled task, or submit while the newest
    row holding the key is still ``newest_ref``."""

    key: str
    digest: str
    reuse: JournalEntry | None = None
    newest_ref: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {HEADER: self.key}


def spec_hash(spec: TaskSpec) -> str:
    """The request's identity: what would be paid for, before any upload."""
    from get3w_cli.journal import file_digest, request_hash

    values: dict[str, Any] = dict(spec.input)
    for key, path in spec.uploads.items():
        values[key] = {"@file-sha256": file_digest(path)}
    route = spec.route
    return request_hash(route.provider, route.api, route.model, values)


def claim(journal: Journal, spec: TaskSpec) -> Claim:
    """What the spec's key allows (before anything is sent, uploads included).

    Raises:
        UsageError: the key was used for another request.
        SubmitUnknownError: the key's submit got no answer (and not ``spec.resubmit_unknown``).
    """
    assert spec.idempotency_key is not None
    key, digest = spec.idempotency_key, spec_hash(spec)
    entry = journal.find_by_idempotency_key(key)
    if entry is None:
        return Claim(key, digest)
    if entry.request_hash != digest:
        raise UsageError(f"the idempotency key {key!r} was used for another request "
                         f"({entry.provider} {entry.api} {entry.model}, task {entry.id or 'without an id'}); "
                         "nothing was sent", hint="use a new key for a new request")
    if entry.id is None:
        if spec.resubmit_unknown:
            return Claim(key, digest, newest_ref=entry.ref)
        raise unknown_error(key, entry.status)
    return Claim(key, digest, reuse=entry, newest_ref=entry.ref)


def unknown_error(key: str, status: str) -> SubmitUnknownError:
    why = ("its submit got no answer" if status != "submitting" else
           "its submit was still going (another g3w may be sending it, or one was killed while it did)")
    return SubmitUnknownError(
        f"a task with idempotency key {key!r} may exist: {why}; nothing was sent",
        hint="look for it in `g3w history` or the provider's dashboard; if none exists, run again with "
             "--resubmit-unknown (which may pay twice)")


def task_from_record(record: Mapping[str, Any]) -> Task:
    """The task a journalled record describes (for a re-print or a download again)."""
    error, raw = record.get("error"), record.get("raw")
    return Task(
        id=str(record.get("id") or ""), provider=str(record.get("provider") or ""), api=str(record.get("api") or ""),
        model=str(record.get("model") or ""), status=normalize_status(record.get("status")),
        outputs=tuple(str(url) for url in record.get("outputs") or ()),
        error=TaskError(error.get("code"), str(error.get("message") or "")) if isinstance(error, Mapping) else None,
        created_at=record.get("created_at"), completed_at=record.get("completed_at"),
        raw=raw if isinstance(raw, Mapping) else {},
    )


def entry_task(entry: JournalEntry) -> Task:
    """The task of a journal row that has an id: its last record, else what its submit knew."""
    if entry.record:
        return task_from_record(entry.record)
    assert entry.id is not None
    return Task(id=entry.id, provider=entry.provider, api=entry.api, model=entry.model,
                status=normalize_status(entry.status))

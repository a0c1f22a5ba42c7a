"""The local SQLite journal: every submitted task (and batch line), written before its POST.

The journal is what lets ``g3w wait/get/cancel ID`` find a task's provider from its id alone,
what ``batch --resume`` trusts to never submit a line twice, and what a lost submit answer is
recorded in (``unknown``) so that it is never sent again blindly. WAL mode: a killed process
loses nothing that was committed. history.db, its -wal and -shm are private (0600).

    store.py    the connection: private files, busy timeout, sqlite errors -> JournalError
    schema.py   the numbered migrations (PRAGMA user_version)
    codec.py    records stored without their input (the input is stored once)
    tasks.py    single tasks: submitting -> submitted | unknown | forgotten, then updated
    batches.py  batches and their lines, each pointing at its task
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from get3w_cli.constants import HASH_CHUNK_BYTES
from get3w_cli.errors import UsageError
from get3w_cli.journal.batches import LINE_STATES, BatchJournal, LineState, LineSubmit
from get3w_cli.journal.store import new_ref
from get3w_cli.journal.tasks import SUBMITTING, UNKNOWN, JournalEntry

__all__ = ["LINE_STATES", "SUBMITTING", "UNKNOWN", "Journal", "JournalEntry", "LineState", "LineSubmit", "file_digest",
           "new_ref", "request_hash"]


class Journal(BatchJournal):
    """Tasks and batches on disk. ``Journal(None)`` keeps nothing (``--no-history``).

    Raises (every method):
        JournalError: any sqlite error (exit 3 by default; a caller writing after a submit
            gives its own hint and exit code).
    """


def request_hash(provider: str, api: str, model: str, input: Mapping[str, Any]) -> str:
    """The identity of a request (what would be paid for): SHA-256 of its canonical JSON, hex."""
    canonical = json.dumps([provider, api, model, input], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, hex: a batch's identity without ``--name``, an uploaded input's in a
    request's identity.

    Raises:
        UsageError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()

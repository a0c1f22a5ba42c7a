"""One batch runs in one process: an exclusive lock per batch, held for the whole run.

Two ``g3w batch`` processes on one batch (two ``--resume``s, or two plain runs racing the
"already ran" check) would each submit the lines the other has not journalled yet: paid twice.
The lock is ``flock`` on a file under G3W_HOME named after the batch, holding the pid of its
holder so the second process can name it; the kernel releases it when the holder exits, even
on kill -9, so a stale lock file never blocks a later run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from get3w_cli.constants import (
    BATCH_NAME_HASH_CHARS,
    JOURNAL_DIR_MODE,
    JOURNAL_FILE_MODE,
)
from get3w_cli.errors import JournalError, UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock; one process per batch is then the user's care
    fcntl = None  # type: ignore[assignment]

LOCK_DIR = "batch-locks"  # under G3W_HOME


def lock_path(folder: Path, name: str) -> Path:
    """The lock file of batch ``name`` under ``folder`` (G3W_HOME)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:BATCH_NAME_HASH_CHARS]
    return folder / LOCK_DIR / f"batch-{digest}.lock"


@contextlib.contextmanager
def batch_lock(folder: Path, name: str) -> Iterator[Path]:
    """Hold batch ``name``'s lock for the block; yield the lock file's path.

    Raises:
        UsageError: another process holds it (exit 2, naming that process); nothing was sent.
        JournalError: the lock file cannot be created under ``folder``.
    """
    path = lock_path(folder, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=JOURNAL_DIR_MODE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, JOURNAL_FILE_MODE)
    except OSError as exc:
        raise JournalError(f"cannot create the batch lock {path}: {exc.strerror or exc}") from exc
    try:
        if fcntl is not None:
            _take(fd, name)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _take(fd: int, name: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BlockingIOError:
        holder = _holder(fd)
        who = f"process {holder}" if holder else "another g3w process"
        raise UsageError(f"batch {name} is running in {who}; nothing was submitted",
                         hint="wait for it to finish, or stop it (Ctrl-C) and run this again with --resume") from None
    except OSError as exc:
        raise JournalError(f"cannot lock batch {name}: {exc.strerror or exc}") from exc


def _holder(fd: int) -> int | None:
    """The pid written by the lock's holder (None if it has not written it yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

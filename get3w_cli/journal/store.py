"""The journal's connection: opening history.db privately, running its migrations, and the one
place where sqlite3 errors become ``JournalError``."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from get3w_cli.constants import (
    JOURNAL_BUSY_TIMEOUT,
    JOURNAL_DIR_MODE,
    JOURNAL_FILE_MODE,
    JOURNAL_WAL_LIMIT_BYTES,
)
from get3w_cli.errors import JournalError, plain_reason
from get3w_cli.journal.codec import PROMPT_FUNCTION, prompt_of
from get3w_cli.journal.schema import migrate

OPEN_HINT = "set G3W_HOME to a writable folder, or use --no-history"
SIDE_FILES = ("-wal", "-shm")


def new_ref() -> str:
    """A journal row's own identity, known before the provider names the task."""
    return "r" + os.urandom(12).hex()


def _private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, or tighten an existing one."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True, mode=JOURNAL_DIR_MODE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, JOURNAL_FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != JOURNAL_FILE_MODE:
            os.fchmod(fd, JOURNAL_FILE_MODE)
    finally:
        os.close(fd)
    # sqlite gives -wal and -shm the database's mode when it creates them; ones left by an
    # older g3w may be wider.
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o777 != JOURNAL_FILE_MODE:
            side.chmod(JOURNAL_FILE_MODE)


class Store:
    """One connection to history.db (or none: ``path=None`` keeps nothing, for --no-history)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            _private_file(path)
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=JOURNAL_BUSY_TIMEOUT)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA journal_size_limit={JOURNAL_WAL_LIMIT_BYTES}")
            self._db.create_function(PROMPT_FUNCTION, 1, prompt_of, deterministic=True)
            migrate(self._db)
        except (OSError, sqlite3.Error, JournalError) as exc:
            if self._db is not None:
                with suppress(sqlite3.Error):  # already failing: the first error is the one to tell
                    self._db.close()
                self._db = None
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"cannot open the journal {path}: {plain_reason(exc)}", hint=OPEN_HINT) from exc

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot close the journal: {plain_reason(exc)}") from exc

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a write, or without a journal)."""
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"journal error: {plain_reason(exc)}") from exc

    def _iter(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of one query, one at a time (memory does not grow with them)."""
        if self._db is None:
            return
        try:
            yield from self._db.execute(sql, tuple(args))
        except sqlite3.Error as exc:
            raise JournalError(f"journal error: {plain_reason(exc)}") from exc

    def _many(self, *statements: tuple[str, Sequence[Sequence[Any]]]) -> None:
        """Each (SQL, rows) run for all its rows, the whole in one transaction (one commit)."""
        if self._db is None or not any(rows for _, rows in statements):
            return
        with self.atomic():
            for sql, rows in statements:
                try:
                    self._db.executemany(sql, rows)
                except sqlite3.Error as exc:
                    raise JournalError(f"journal error: {plain_reason(exc)}") from exc

    @contextmanager
    def atomic(self, *, immediate: bool = False) -> Iterator[None]:
        """Group the writes inside into one transaction (one commit instead of one each);
        ``immediate``: take the write lock first, so that what is read inside stays true until
        the commit (another process's writer waits)."""
        if self._db is None or self._db.in_transaction:
            yield
            return
        self._exec("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            self._exec("ROLLBACK")
            raise
        self._exec("COMMIT")

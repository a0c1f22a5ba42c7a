"""The journal: migrations from every earlier shape, inputs stored once, private files, a short
busy timeout with every sqlite error translated, and the single-task API written before a POST."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.errors import ExitCode, JournalError
from get3w_cli.journal import Journal
from get3w_cli.journal.schema import VERSION
from get3w_cli.records import Status, Task

# The shapes g3w wrote before the journal had versions (user_version 0), as they were.
FIRST_SCHEMA = """
CREATE TABLE tasks (id TEXT PRIMARY KEY, provider TEXT NOT NULL, api TEXT NOT NULL, model TEXT NOT NULL,
    base_url TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, record TEXT, batch TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE TABLE batches (name TEXT PRIMARY KEY, source TEXT, digest TEXT, total INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE batch_lines (batch TEXT NOT NULL, ident TEXT NOT NULL, line INTEGER NOT NULL, key TEXT,
    state TEXT NOT NULL, task_id TEXT, record TEXT, updated_at REAL NOT NULL, PRIMARY KEY (batch, ident));
"""
SKETCH_BATCH_TABLES = """
CREATE TABLE batches (name TEXT PRIMARY KEY, source TEXT, total INTEGER, created_at REAL NOT NULL,
    updated_at REAL NOT NULL);
CREATE TABLE batch_lines (batch TEXT NOT NULL, line INTEGER NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,
    task_id TEXT, record TEXT, updated_at REAL NOT NULL, PRIMARY KEY (batch, key));
"""
INPUT = {"prompt": "a lighthouse", "seed": 7}


def old_record(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "provider": "get3w", "api": "v3", "model": "get3w/flux-dev", "status": status,
            "outputs": ["https://cdn/x.png"] if status == "completed" else [], "error": None, "via": "poll",
            "input": INPUT, "created_at": "2026-01-01T00:00:00Z", "completed_at": None, "elapsed_s": 1.0,
            "raw": {"id": task_id, "status": status, "input": INPUT}, **extra}


def write_old_journal(path: Path, tables: str) -> dict[str, Any]:
    """A journal as an earlier g3w left it: two tasks, a batch with a line that has a task and
    one that was rejected (its record only on the line)."""
    done, rejected = old_record("pred_1", "completed", key="a"), old_record(None, "failed", key=2)  # type: ignore[arg-type]
    rejected.update(error={"code": "rejected", "message": "bad input"}, raw={})
    db = sqlite3.connect(path)
    db.executescript(tables)
    for task_id, status, record, batch in (("pred_1", "completed", done, "b"), ("pred_2", "created", None, None)):
        db.execute("INSERT INTO tasks VALUES (?, 'get3w', 'v3', 'get3w/flux-dev', 'http://api', ?, ?, ?, ?, ?, ?)",
                   (task_id, json.dumps(INPUT), status, json.dumps(record) if record else None, batch, 1.0, 2.0))
    if "ident" in tables:
        db.execute("INSERT INTO batches VALUES ('b', 'f.jsonl', 'abc', 2, 1.0, 2.0)")
        db.execute("INSERT INTO batch_lines VALUES ('b', 'k:a', 1, 'a', 'done', 'pred_1', ?, 2.0)", (json.dumps(done),))
        db.execute("INSERT INTO batch_lines VALUES ('b', 'n:2', 2, NULL, 'failed', NULL, ?, 2.0)",
                   (json.dumps(rejected),))
    db.commit()
    db.close()
    return {"done": done, "rejected": rejected}


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


# --- migrations --------------------------------------------------------------------------------


def test_an_empty_file_becomes_a_current_journal(tmp_path: Path) -> None:
    """An empty history.db (user_version 0) gets every step: the version is current and it works."""
    path = tmp_path / "history.db"
    path.touch()
    journal = Journal(path)
    try:
        ref = journal.task_submitting(provider="get3w", api="v3", model="get3w/flux-dev", base_url="http://api",
                                      input=INPUT)
        assert [e.ref for e in journal.tasks()] == [ref]
    finally:
        journal.close()
    assert user_version(path) == VERSION >= 2


def test_the_first_schema_with_rows_is_migrated_keeping_every_row(tmp_path: Path) -> None:
    """Today's schema at user_version 0: tasks, records, batches and lines survive the migration."""
    path = tmp_path / "history.db"
    old = write_old_journal(path, FIRST_SCHEMA)
    journal = Journal(path)
    try:
        done, waiting = journal.find("pred_1"), journal.find("pred_2")
        assert done is not None and waiting is not None
        assert (done.input, done.status, done.record, done.batch) == (INPUT, "completed", old["done"], "b")
        assert (waiting.input, waiting.status, waiting.record, waiting.model) == (INPUT, "created", None,
                                                                                   "get3w/flux-dev")
        lines = list(journal.batch_lines("b"))
        assert lines == [(1, "a", "done", "pred_1", old["done"]), (2, None, "failed", None, old["rejected"])]
        known = journal.line_get("b", "k:a")
        assert known is not None and (known.state, known.task_id) == ("done", "pred_1")
        assert journal.line_record("b", "n:2") == old["rejected"]
        assert journal.batch_find("b") is not None
    finally:
        journal.close()
    assert user_version(path) == VERSION


def test_the_sketch_batch_tables_are_dropped_and_tasks_kept(tmp_path: Path) -> None:
    """The unreleased sketch (batch_lines without ident) is dropped; the tasks beside it survive."""
    path = tmp_path / "history.db"
    write_old_journal(path, FIRST_SCHEMA.split("CREATE TABLE batches")[0] + SKETCH_BATCH_TABLES)
    journal = Journal(path)
    try:
        assert {e.id for e in journal.tasks()} == {"pred_1", "pred_2"}
        assert journal.batches() == []
        journal.batch_open("new", source="f", digest="d", total=1)
        assert journal.batch_find("new") is not None
    finally:
        journal.close()
    assert user_version(path) == VERSION


def test_reopening_a_current_journal_changes_nothing(tmp_path: Path) -> None:
    """A second open (and a second process's) finds the version current and the rows intact."""
    path = tmp_path / "history.db"
    write_old_journal(path, FIRST_SCHEMA)
    for _ in range(2):
        journal = Journal(path)
        try:
            assert len(journal.tasks()) == 2
        finally:
            journal.close()
    assert user_version(path) == VERSION


def test_a_journal_from_a_newer_g3w_is_refused(tmp_path: Path) -> None:
    """A version above ours is a JournalError (exit 3), not a guess at its shape."""
    path = tmp_path / "history.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.close()
    with pytest.raises(JournalError) as caught:
        Journal(path)
    assert caught.value.exit_code == ExitCode.CONFIG and "newer" in caught.value.message


# --- each input stored once ----------------------------------------------------------------------


def journal_bytes(home: Path) -> int:
    return sum(f.stat().st_size for f in home.glob("history.db*"))


def test_a_large_input_is_stored_once(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """Large inputs through run and batch (polled: the provider echoes the input in raw): the
    journal is about the size of the inputs, not five times it."""
    big = "x" * 2_000_000
    env = sandbox_env(sandbox)
    (tmp_path / "input.json").write_text(json.dumps({"prompt": big}))
    ran = invoke("run", "flux-dev", "--input", str(tmp_path / "input.json"), "--via", "poll", "--poll-max", "0.2",
              "--json", env=env)
    assert ran.code == 0, ran.stderr
    lines = [{"model": "flux-dev", "input": {"prompt": big + str(i)}, "key": f"k{i}"} for i in range(2)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch = invoke("batch", str(tmp_path / "t.jsonl"), "--via", "poll", "--poll-max", "0.2", env=env)
    assert batch.code == 0, batch.stderr
    assert all(json.loads(row)["raw"]["input"]["prompt"].startswith(big) for row in batch.stdout.splitlines())
    home = Path(os.environ["G3W_HOME"])
    assert journal_bytes(home) < 1.2 * 3 * len(big)
    history = [json.loads(row) for row in invoke("history", "--json").stdout.splitlines()]
    assert sorted(len(r["input"]["prompt"]) for r in history) == [len(big), len(big) + 1, len(big) + 1]
    assert all(r["raw"]["input"] == r["input"] for r in history)  # put back as the provider sent it


def test_a_record_is_read_back_as_it_was_written(tmp_path: Path) -> None:
    """task_updated stores the record without its input (and raw's echo of it); find puts both back."""
    journal = Journal(tmp_path / "history.db")
    try:
        ref = journal.task_submitting(provider="get3w", api="v3", model="m", base_url="http://api", input=INPUT)
        journal.task_submitted(ref, Task("pred_9", "get3w", "v3", "get3w/m", Status.CREATED))
        record = old_record("pred_9", "completed")
        journal.task_updated("pred_9", "completed", record)
        entry = journal.find("pred_9")
        assert entry is not None and entry.record == record and list(entry.record) == list(record)
        other = {**record, "raw": {"input": {"prompt": "not the same"}}}
        journal.task_updated("pred_9", "completed", other)
        entry = journal.find("pred_9")
        assert entry is not None and entry.record == other
        stored = sqlite3.connect(tmp_path / "history.db").execute("SELECT record FROM tasks").fetchone()[0]
        assert "lighthouse" not in stored
    finally:
        journal.close()


# --- private files ---------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_journal_and_its_folder_are_private(tmp_path: Path) -> None:
    """history.db, -wal and -shm are 0600 and a folder g3w creates is 0700, whatever the umask."""
    home = tmp_path / "new" / "g3w"
    previous = os.umask(0o022)
    try:
        journal = Journal(home / "history.db")
        try:
            journal.task_submitting(provider="get3w", api="v3", model="m", base_url="http://api", input=INPUT)
            assert (home / "history.db-wal").exists() and (home / "history.db-shm").exists()
            assert {p.name: mode(p) for p in home.iterdir()} == {
                "history.db": 0o600, "history.db-wal": 0o600, "history.db-shm": 0o600}
        finally:
            journal.close()
    finally:
        os.umask(previous)
    assert mode(home) == 0o700


def test_an_existing_readable_journal_is_made_private(tmp_path: Path) -> None:
    """A history.db left world-readable (by an older g3w) is tightened to 0600 when opened."""
    path = tmp_path / "history.db"
    write_old_journal(path, FIRST_SCHEMA)
    path.chmod(0o644)
    Journal(path).close()
    assert mode(path) == 0o600


# --- errors --------------------------------------------------------------------------------------------


def test_a_locked_journal_fails_fast_with_a_journal_error(tmp_path: Path) -> None:
    """Another process holding the write lock: the write gives up after the short busy timeout,
    as a JournalError whose hint does not suggest --no-history."""
    path = tmp_path / "history.db"
    journal = Journal(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with pytest.raises(JournalError) as caught:
            journal.task_updated("pred_1", "completed", {"status": "completed"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        journal.close()
    assert time.monotonic() - started < 15  # not sqlite's old 30 s: a stuck journal does not look hung
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "locked" in caught.value.message
    assert caught.value.hint is not None and "G3W_HOME" in caught.value.hint and "--no-history" not in caught.value.hint
    assert not isinstance(caught.value, sqlite3.Error) and isinstance(caught.value.__cause__, sqlite3.Error)


def test_a_corrupt_journal_is_exit_3_with_a_hint_and_no_traceback(tmp_path: Path) -> None:
    """history.db that is not a database: `g3w history` says so (exit 3), naming G3W_HOME."""
    home = Path(os.environ["G3W_HOME"])
    home.mkdir(parents=True)
    (home / "history.db").write_bytes(b"this is not a database" * 100)
    result = invoke("history")
    assert result.code == 3
    assert "cannot open the journal" in result.stderr and "G3W_HOME" in result.stderr
    assert "Traceback" not in result.stderr


# --- single tasks written before their POST -----------------------------------------------------------


def submitting(journal: Journal, **extra: Any) -> str:
    return journal.task_submitting(provider="get3w", api="v3", model="get3w/flux-dev", base_url="http://api",
                                   input=INPUT, **extra)


def test_a_task_is_journalled_before_its_post_and_completed_by_the_answer(tmp_path: Path) -> None:
    """task_submitting is committed at once (another process sees it); task_submitted gives the row
    its id, status and model; task_updated then finds it by id."""
    journal, other = Journal(tmp_path / "history.db"), Journal(tmp_path / "history.db")
    try:
        ref = submitting(journal, idempotency_key="ci-42", request_hash="h1")
        seen = other.tasks()
        assert [(e.ref, e.id, e.status, e.input, e.idempotency_key, e.request_hash) for e in seen] == [
            (ref, None, "submitting", INPUT, "ci-42", "h1")]
        journal.task_submitted(ref, Task("pred_7", "get3w", "v3", "get3w/flux-dev-v2", Status.CREATED))
        entry = other.find("pred_7")
        assert entry is not None and (entry.ref, entry.status, entry.model) == (ref, "created", "get3w/flux-dev-v2")
        journal.task_updated("pred_7", "completed", old_record("pred_7", "completed"))
        by_key = other.find_by_idempotency_key("ci-42")
        assert by_key is not None and by_key.status == "completed" and by_key.record is not None
        assert other.find_by_idempotency_key("other") is None
    finally:
        journal.close()
        other.close()


def test_unknown_and_forgotten_submits(tmp_path: Path) -> None:
    """task_unknown keeps the row (no id) with the reason; task_forget drops it and its input."""
    journal = Journal(tmp_path / "history.db")
    try:
        lost, refused = submitting(journal), submitting(journal)
        journal.task_unknown(lost, "connection reset after the request was sent")
        journal.task_forget(refused)
        entries = journal.tasks()
        assert [(e.ref, e.id, e.status, e.message) for e in entries] == [
            (lost, None, "unknown", "connection reset after the request was sent")]
        assert journal.tasks(status="unknown") == entries
        inputs = sqlite3.connect(tmp_path / "history.db").execute("SELECT count(*) FROM task_inputs").fetchone()[0]
        assert inputs == 1
    finally:
        journal.close()


def test_no_history_keeps_nothing_and_every_call_is_harmless() -> None:
    """Journal(None): refs are still given, nothing is found, nothing raises."""
    journal = Journal(None)
    ref = submitting(journal)
    assert isinstance(ref, str) and ref
    journal.task_submitted(ref, Task("pred_1", "get3w", "v3", "m", Status.CREATED))
    journal.task_unknown(ref, "lost")
    journal.task_forget(ref)
    journal.task_updated("pred_1", "completed", {"status": "completed"})
    assert (journal.find("pred_1"), journal.find_by_idempotency_key("k"), journal.tasks()) == (None, None, [])
    journal.close()


def test_history_shows_rows_whose_submit_got_no_answer() -> None:
    """`g3w history` lists an unknown row (no id) beside the others; --json gives id null,
    status unknown and error.code submit_unknown with the reason."""
    journal = Journal(Path(os.environ["G3W_HOME"]) / "history.db")
    try:
        ref = submitting(journal)
        journal.task_submitted(ref, Task("pred_1", "get3w", "v3", "get3w/flux-dev", Status.CREATED))
        journal.task_unknown(submitting(journal), "the answer was lost")
    finally:
        journal.close()
    records = [json.loads(row) for row in invoke("history", "--json").stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in records] == [(None, "unknown"), ("pred_1", "created")]
    assert records[0]["error"] == {"code": "submit_unknown", "message": "the answer was lost"}
    assert records[0]["input"] == INPUT and records[0]["model"] == "get3w/flux-dev"
    table = invoke("history").stdout.splitlines()
    assert table[1].split("\t")[:4] == ["-", "get3w v3", "get3w/flux-dev", "unknown"]


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    """Several connections (as from several processes) opening an old journal at once: each step
    runs once, no row is lost."""
    path = tmp_path / "history.db"
    write_old_journal(path, FIRST_SCHEMA)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Journal(path).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    journal = Journal(path)
    try:
        assert {e.id for e in journal.tasks()} == {"pred_1", "pred_2"}
    finally:
        journal.close()
    assert user_version(path) == VERSION

"""The sandbox's optional state file (``SandboxOptions.state_file``): tasks outlive the process.

``g3w submit --sandbox`` exits with its in-process sandbox; ``g3w wait <id> --sandbox`` starts
another one (another port) from the same file, so it still answers GET, DELETE and the CDN
for the old task in its API's shape.

Format: ``{"version": 1, "tasks": [record, ...]}``, newest first, at most SANDBOX_STATE_MAX.
A record keeps wall-clock times (unix seconds) and the controls; a loaded task's phase follows
from them, so a task submitted by one process is completed for the next after its duration.
Output URLs are built from the current sandbox's base URL. Loaded tasks never call back: their
callback URL belonged to a process that is gone. The API key is kept only as a digest.

Writes are atomic (temp file + ``os.replace``, mode 0600) and merge with the file as it is on
disk: only tasks this sandbox created or changed are written over it, so two processes sharing
the file keep each other's tasks. A missing or corrupt file (or record) is ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from get3w_cli.constants import (
    SANDBOX_MAX_OUTPUT_BYTES,
    SANDBOX_STATE_MAX,
    SANDBOX_STATE_SAVE_DELAY,
)
from get3w_cli.sandbox.catalogue import (
    ABSTRAKT_MODELS,
    GET3W_V1_MODELS,
    GET3W_V3_MODELS,
)
from get3w_cli.sandbox.state import Controls, SandboxTask, TaskStore

STATE_VERSION = 1
_MODELS = {"v1": GET3W_V1_MODELS, "v3": GET3W_V3_MODELS, "abstrakt": ABSTRAKT_MODELS}
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedTask:
    """One task as the state file holds it (times are unix seconds)."""

    id: str
    api: str
    model: str
    input: dict[str, Any]
    key_hash: str
    request_id: str
    controls: Controls
    created: float
    cancelled: bool = False
    ended: float | None = None  # when it was cancelled
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        c = self.controls
        return {
            "id": self.id, "api": self.api, "model": self.model, "input": self.input,
            "key_hash": self.key_hash, "request_id": self.request_id, "created": self.created,
            "duration": c.duration, "fail": c.fail, "outputs": c.outputs,
            "output_bytes": c.output_bytes, "cancelled": self.cancelled, "ended": self.ended,
            "deleted": self.deleted,
        }

    @classmethod
    def from_json(cls, obj: Any) -> SavedTask:
        """Parse a record; anything malformed raises ValueError."""
        if not isinstance(obj, dict):
            raise ValueError("a record is not an object")
        api, model = _typed(obj, "api", str), _typed(obj, "model", str)
        if model not in _MODELS.get(api, {}):
            raise ValueError(f"unknown model {api} {model}")
        size = obj.get("output_bytes")
        created = _number(obj, "created")
        ended = None if obj.get("ended") is None else _number(obj, "ended")
        for when in (created, ended):  # out of datetime's range: ValueError or OverflowError
            if when is not None:
                datetime.fromtimestamp(when, timezone.utc)
        controls = Controls(
            duration=_number(obj, "duration"),
            fail=_typed(obj, "fail", str) if obj.get("fail") is not None else None,
            outputs=int(_number(obj, "outputs")),
            output_bytes=None if size is None
            else min(int(_number(obj, "output_bytes")), SANDBOX_MAX_OUTPUT_BYTES),
        )
        return cls(
            id=_typed(obj, "id", str), api=api, model=model, input=_typed(obj, "input", dict),
            key_hash=_typed(obj, "key_hash", str), request_id=_typed(obj, "request_id", str),
            controls=controls, created=created,
            cancelled=_typed(obj, "cancelled", bool), deleted=_typed(obj, "deleted", bool),
            ended=ended,
        )


def _typed(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ValueError(f"{name} is not a {kind.__name__}")
    return value


def _number(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is not a number")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} is not a finite non-negative number")
    return float(value)


def snapshot(task: SandboxTask) -> SavedTask:
    ended = None
    if task.cancelled and task.ended_at is not None:
        ended = task.wall(task.ended_at).timestamp()
    return SavedTask(
        id=task.id, api=task.api, model=task.model, input=task.input, key_hash=task.key_hash,
        request_id=task.request_id, controls=task.controls,
        created=task.created_wall.timestamp(), cancelled=task.cancelled, ended=ended,
        deleted=task.deleted,
    )


def restore(saved: SavedTask, loop_now: float, wall_now: float) -> SandboxTask:
    """A SandboxTask on this loop's clock, placed in time by its wall-clock creation."""
    def loop_time(wall: float) -> float:
        return loop_now - (wall_now - wall)

    ended_at = None
    if saved.cancelled:
        ended_at = loop_time(saved.ended if saved.ended is not None else wall_now)
    return SandboxTask(
        id=saved.id, api=saved.api, model=saved.model, input=saved.input,
        key_hash=saved.key_hash, controls=saved.controls, webhook_url=None,
        created_at=loop_time(saved.created),
        created_wall=datetime.fromtimestamp(saved.created, timezone.utc),
        request_id=saved.request_id, cancelled=saved.cancelled, deleted=saved.deleted,
        ended_at=ended_at,
    )


def read_state(path: Path) -> dict[str, SavedTask]:
    """The valid records of the file by id; a missing, unreadable or corrupt file is empty."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and bad UTF-8
        _log.warning("ignoring the sandbox state file %s: %s", path, exc)
        return {}
    records = document.get("tasks") if isinstance(document, dict) else None
    found: dict[str, SavedTask] = {}
    for record in records if isinstance(records, list) else []:
        try:
            saved = SavedTask.from_json(record)
        except (ValueError, TypeError, OverflowError, OSError):
            continue
        found[saved.id] = saved
    return found


def write_state(path: Path, tasks: list[SavedTask]) -> None:
    """Replace the file atomically with ``tasks``, readable by the owner only."""
    text = json.dumps({"version": STATE_VERSION, "tasks": [t.to_json() for t in tasks]})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sandbox-state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFile:
    """Loads a store from the file, and writes the store's changes back (debounced)."""

    def __init__(self, path: Path, store: TaskStore) -> None:
        self.path = path
        self._store = store
        self._dirty: dict[str, SandboxTask] = {}
        self._pending: asyncio.TimerHandle | None = None

    def load(self) -> int:
        """Adopt the file's tasks into the store; how many there were."""
        saved = read_state(self.path)
        loop_now, wall_now = self._store.now(), time.time()
        for record in saved.values():
            self._store.adopt(restore(record, loop_now, wall_now))
        return len(saved)

    def changed(self, task: SandboxTask) -> None:
        """Note a created or changed task; the file is written SANDBOX_STATE_SAVE_DELAY later."""
        self._dirty[task.id] = task
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(SANDBOX_STATE_SAVE_DELAY, self.flush)

    def flush(self) -> None:
        """Write the changed tasks over the file now; a failure is logged, never raised."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self._dirty:
            return
        merged = read_state(self.path)
        merged.update((task_id, snapshot(task)) for task_id, task in self._dirty.items())
        kept = sorted(merged.values(), key=lambda t: t.created, reverse=True)[:SANDBOX_STATE_MAX]
        try:
            write_state(self.path, kept)
        except OSError as exc:
            _log.warning("could not save the sandbox state file %s: %s", self.path, exc)
            return
        # On disk now; a task is written again only when it changes again.
        self._dirty.clear()

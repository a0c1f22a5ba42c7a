"""Sandbox tasks and their lifecycle, driven by the event loop clock (no threads).

A task is ``created`` (Abstrakt: ``pending``) until SANDBOX_PROCESSING_FRACTION of its duration
has passed, then ``processing``, then ``completed`` or ``failed`` at its duration. The
intermediate phases are computed from the clock when asked; the terminal one is also marked by
a loop timer, which wakes synchronous waiters and triggers the webhook delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from get3w_cli.constants import SANDBOX_MAX_OUTPUT_BYTES, SANDBOX_PROCESSING_FRACTION

WEBHOOK_MODES = ("drop", "early", "late_processing")
DEFAULT_FAILURE = "Model execution failed (sandbox_fail)"


class Phase(str, Enum):
    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED)


@dataclass(frozen=True)
class Controls:
    """The per-task ``sandbox_*`` inputs (see the package docstring)."""

    duration: float
    fail: str | None = None
    outputs: int = 1
    output_bytes: int | None = None
    webhook: str | None = None


def _number(inputs: Mapping[str, Any], name: str) -> float | None:
    value = inputs.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def parse_controls(inputs: Mapping[str, Any], default_duration: float) -> Controls:
    """Read the ``sandbox_*`` controls; a malformed one raises ValueError (answered as 400)."""
    duration = _number(inputs, "sandbox_duration")
    outputs = _number(inputs, "sandbox_outputs")
    size = _number(inputs, "sandbox_output_bytes")
    fail = inputs.get("sandbox_fail")
    if fail is True:
        fail = DEFAULT_FAILURE
    elif fail in (None, False, ""):
        fail = None
    elif not isinstance(fail, str):
        raise ValueError("sandbox_fail must be true or a message")
    webhook = inputs.get("sandbox_webhook")
    if webhook is not None and webhook not in WEBHOOK_MODES:
        raise ValueError(f"sandbox_webhook must be one of {', '.join(WEBHOOK_MODES)}")
    return Controls(
        duration=default_duration if duration is None else duration,
        fail=fail,
        outputs=1 if outputs is None else int(outputs),
        output_bytes=None if size is None else min(int(size), SANDBOX_MAX_OUTPUT_BYTES),
        webhook=webhook,
    )


def key_hash(key: str) -> str:
    """How a task remembers its API key: a digest, so a state file never holds a real key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(api: str) -> str:
    """A fresh task id in the API's style: v3 ``pred_<hex>``, v1 UUID4, Abstrakt ``job_<hex>``."""
    if api == "v1":
        return str(uuid.uuid4())
    return ("pred_" if api == "v3" else "job_") + secrets.token_hex(6)


@dataclass(eq=False)
class SandboxTask:
    id: str
    api: str  # "v1" | "v3" | "abstrakt"
    model: str
    input: dict[str, Any]
    key_hash: str
    controls: Controls
    webhook_url: str | None
    created_at: float  # loop clock
    created_wall: datetime
    request_id: str = field(default_factory=lambda: "fal_req_" + secrets.token_hex(6))
    finished: bool = False
    cancelled: bool = False
    deleted: bool = False
    # Output URLs carry ``?v=<n>`` once their links were expired (``expire_urls``); the CDN
    # answers 403 to any other version, like a signed URL past its expiry. Not saved in a state file.
    url_version: int = 0
    ended_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None
    first_delivery: asyncio.Future[None] | None = None

    @property
    def duration(self) -> float:
        return self.controls.duration

    @property
    def estimated_duration(self) -> int:
        return math.ceil(self.duration)

    def phase(self, now: float) -> Phase:
        if self.cancelled:
            return Phase.CANCELLED
        if self.finished or now >= self.created_at + self.duration:
            return Phase.FAILED if self.controls.fail else Phase.COMPLETED
        if now >= self.created_at + self.duration * SANDBOX_PROCESSING_FRACTION:
            return Phase.PROCESSING
        return Phase.CREATED

    def wall(self, loop_time: float) -> datetime:
        """The wall-clock time matching a loop-clock instant of this task."""
        return self.created_wall + timedelta(seconds=loop_time - self.created_at)

    def ended_wall(self) -> datetime:
        end = self.ended_at if self.ended_at is not None else self.created_at + self.duration
        return self.wall(end)


class TaskStore:
    """Every task the sandbox made, by id, with the timers that end them."""

    def __init__(self, on_terminal: Callable[[SandboxTask], None],
                 on_change: Callable[[SandboxTask], None] | None = None) -> None:
        self.tasks: dict[str, SandboxTask] = {}
        self._on_terminal = on_terminal
        self._on_change = on_change or (lambda task: None)
        self._closed = False

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def create(self, *, api: str, model: str, inputs: dict[str, Any], key: str,
               controls: Controls, webhook_url: str | None) -> SandboxTask:
        loop = asyncio.get_running_loop()
        task = SandboxTask(
            id=new_id(api), api=api, model=model, input=inputs, key_hash=key_hash(key),
            controls=controls,
            webhook_url=webhook_url, created_at=loop.time(),
            created_wall=datetime.now(timezone.utc),
        )
        if webhook_url and controls.webhook == "early":
            task.first_delivery = loop.create_future()
        if self._closed:  # a request that raced close(): never runs, never blocks its handler
            task.done.set()
            if task.first_delivery is not None:
                task.first_delivery.set_result(None)
        else:
            task.timer = loop.call_later(task.duration, self._finish, task)
        self.tasks[task.id] = task
        self._on_change(task)
        return task

    def adopt(self, task: SandboxTask) -> None:
        """Take in a task made by an earlier sandbox (see persist); its phase follows its clock."""
        if task.id in self.tasks:
            return
        now = self.now()
        if task.cancelled:
            task.done.set()
        elif task.phase(now).terminal:
            task.finished = True
            task.ended_at = task.created_at + task.duration
            task.done.set()
        elif not self._closed:
            end = task.created_at + task.duration
            task.timer = asyncio.get_running_loop().call_later(end - now, self._finish, task)
        self.tasks[task.id] = task

    def get(self, task_id: str) -> SandboxTask | None:
        return self.tasks.get(task_id)

    def _finish(self, task: SandboxTask) -> None:
        task.timer = None
        if task.cancelled:
            return
        task.finished = True
        task.ended_at = task.created_at + task.duration
        task.done.set()
        self._on_terminal(task)

    def cancel(self, task: SandboxTask) -> None:
        """Stop a task that has not finished; it never completes and never calls back."""
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        task.cancelled = True
        task.ended_at = self.now()
        task.done.set()
        self._on_change(task)

    def delete(self, task: SandboxTask) -> None:
        """v3 DELETE: cancel the task if it still runs; either way its outputs are gone."""
        task.deleted = True  # before cancel(), so the one change reported carries both
        if not task.phase(self.now()).terminal:
            self.cancel(task)
        else:
            self._on_change(task)

    def expire_urls(self, task_id: str | None = None) -> int:
        """Make the output URLs handed out so far stop working (all tasks', or one task's): the
        next GET gives fresh ones. Returns how many tasks were touched."""
        if task_id is None:
            chosen = list(self.tasks.values())
        else:
            chosen = [self.tasks[task_id]] if task_id in self.tasks else []
        for task in chosen:
            task.url_version += 1
        return len(chosen)

    def active_for_key(self, key: str) -> int:
        now, digest = self.now(), key_hash(key)
        return sum(1 for t in self.tasks.values()
                   if t.key_hash == digest and not t.phase(now).terminal)

    async def wait_terminal(self, task: SandboxTask, timeout: float) -> None:
        """Wait until the task ends, or ``timeout`` seconds, whichever is first."""
        if task.done.is_set():
            return
        try:
            await asyncio.wait_for(task.done.wait(), timeout=max(0.0, timeout))
        except asyncio.TimeoutError:
            pass

    def close(self) -> None:
        """Stop every timer and wake every waiter (the server is going away)."""
        self._closed = True
        for task in self.tasks.values():
            if task.timer is not None:
                task.timer.cancel()
                task.timer = None
            task.done.set()
            if task.first_delivery is not None and not task.first_delivery.done():
                task.first_delivery.set_result(None)

"""The loop behind ``g3w listen``: drain the receiver's queue, act on each event, decide when to stop.

For each queued delivery, in arrival order: save it (``--save``), then for a unique event
report it (``on_event``: the stderr line and the ``--json`` line), queue ``--exec`` and
``--forward-to`` on their own serial workers (so a slow command or a down app never delays
the provider's 2xx nor the next event's line, and each keeps the events' order), and check
the stop rules (``--for``, ``--count``). ``--timeout`` bounds the wait for events; on a
rule's stop the workers finish what they hold first. Every path closes what it opened.

A delivery's bytes stay charged to the receiver's budget until all of that is done with it:
the output thread, each worker and the loop itself hold its claim and let go when finished,
so a stalled stdout, a slow command or a slow app makes the receiver answer 503.
"""

from __future__ import annotations

import asyncio
import functools
import json
import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from get3w_cli.constants import LISTEN_OUTPUT_BACKOFF as OUTPUT_BACKOFF
from get3w_cli.constants import LISTEN_QUEUE_MAX
from get3w_cli.errors import plain_reason
from get3w_cli.timeouts import within
from get3w_cli.webhooks.forwarder import (
    Forwarder,
    run_exec,
    save_delivery,
    saved_record,
)
from get3w_cli.webhooks.http_common import one_line
from get3w_cli.webhooks.receiver import Event, RawDelivery, Received, Receiver, iso_utc

FOR_DONE, COUNT_DONE, TIMED_OUT = "for", "count", "timeout"
Note = Callable[[str], None]


@dataclass(frozen=True)
class StopRules:
    for_id: str | None = None  # stop after this task's final event
    count: int | None = None  # stop after this many unique final events
    timeout: float | None = None  # stop (TIMED_OUT) when no rule was met in this long


@dataclass(frozen=True)
class Actions:
    forward_to: str | None = None
    exec_command: str | None = None
    exec_stdout: int | None = None  # file descriptor for the command's stdout (None: ours)
    save_dir: Path | None = None


@dataclass(frozen=True)
class ListenOutcome:
    reason: str  # FOR_DONE, COUNT_DONE or TIMED_OUT
    event: Event | None = None  # the event that met the rule
    finals: int = 0  # unique final events seen


def _nothing() -> None:
    pass


class SerialWorker:
    """Runs queued jobs one at a time, in order; a failing job is reported, never fatal."""

    def __init__(self, note: Note, *, limit: int = LISTEN_QUEUE_MAX) -> None:
        self._note = note
        self._jobs: asyncio.Queue[tuple[Callable[[], Awaitable[None]], Callable[[], None]]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self.pending = 0  # jobs queued or running

    async def put(self, job: Callable[[], Awaitable[None]], done: Callable[[], None] = _nothing) -> None:
        """Queue ``job``; waits while the queue is full (which backs up to the receiver's 503).

        ``done`` is called once the job has run (whatever its outcome).
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await self._jobs.put((job, done))
        self.pending += 1

    async def _run(self) -> None:
        while True:
            job, done = await self._jobs.get()
            try:
                await job()
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
                self._note(f"internal error in a background job: {plain_reason(exc)}")
            finally:
                self.pending -= 1
                done()
                self._jobs.task_done()

    async def drain(self) -> None:
        """Wait until every queued job has run."""
        await self._jobs.join()

    async def close(self) -> int:
        """Stop, dropping what has not run (or not finished); return how many jobs were dropped."""
        dropped = self.pending
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return dropped


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class OutputPump:
    """Runs the output callback on one thread, in order, so a stalled stdout never stalls the server.

    One long-lived thread instead of a thread hop per event: a flood of events costs a queue
    put each. When the thread falls behind by ``limit`` events the consumer waits, the
    receiver's queue fills, and senders get 503 and retry later. An exception from the
    callback (stdout closed, say) ends the thread and is raised by the next ``put``/``close``.
    """

    def __init__(self, callback: Callable[[Event], None], *, limit: int = LISTEN_QUEUE_MAX) -> None:
        self._callback = callback
        self._jobs: queue.Queue[tuple[Event, Callable[[], None]] | None] = queue.Queue(limit)
        self._failure: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self.failed: asyncio.Future[None] = self._loop.create_future()
        # Set from the thread as it ends, so that close() needs no executor thread to join it:
        # a listener out of file descriptors could not start one (nor import its module).
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="g3w-listen-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            try:
                self._loop.call_soon_threadsafe(_settle, self._ended)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            event, done = job
            try:
                self._callback(event)
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop, raised there
                self._failure = exc
                self._loop.call_soon_threadsafe(self._fail, exc)
                return
            finally:
                done()  # thread-safe (Claim.release)

    def _fail(self, exc: BaseException) -> None:
        if not self.failed.done():
            self.failed.set_exception(exc)

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def put(self, event: Event, done: Callable[[], None] = _nothing) -> None:
        """Queue ``event`` for the callback; ``done`` is called (on the thread) once it ran."""
        await self._put((event, done))

    async def _put(self, job: tuple[Event, Callable[[], None]] | None) -> None:
        while True:
            self._check()
            try:
                self._jobs.put_nowait(job)
                return
            except queue.Full:
                await asyncio.sleep(OUTPUT_BACKOFF)

    async def close(self) -> None:
        """Print what is queued, then stop the thread."""
        if self._thread.is_alive():
            await self._put(None)
            await self._ended
        if self.failed.done():
            self.failed.exception()  # retrieved here: the failure is raised just below
        self._check()


class _Session:
    """One run of the loop: the receiver, the workers and the counters."""

    def __init__(self, receiver: Receiver, rules: StopRules, actions: Actions,
                 on_event: Callable[[Event], None], note: Note) -> None:
        self.receiver, self.rules, self.actions = receiver, rules, actions
        self.on_event, self.note = on_event, note
        self.forwarder: Forwarder | None = None
        self.output = OutputPump(on_event)
        self.exec_worker = SerialWorker(note)
        self.forward_worker = SerialWorker(note)
        self.finals = 0
        self.saved = 0

    async def consume(self) -> ListenOutcome:
        # Each item's bytes are let go by the loop once it has handed the item on (an exception
        # ends the session, so what it leaves held no longer matters); the output thread and
        # the workers hold their own share until their work on it is done.
        while True:
            item = await self._next()
            if self.actions.save_dir is not None:
                await self._save(self.actions.save_dir, item.raw)
            event = item.event
            if event is None:
                item.release()
                continue
            await self.output.put(event, _hold(item))
            if self.actions.exec_command:
                await self.exec_worker.put(functools.partial(self._exec, event), _hold(item))
            if self.forwarder is not None:
                await self.forward_worker.put(functools.partial(self._forward, event), _hold(item))
            item.release()
            outcome = self._stop_after(event)
            if outcome is not None:
                return outcome

    async def _next(self) -> Received:
        """The next queued delivery; raises at once if printing failed (stdout closed)."""
        if not self.receiver.queue.empty():
            return self.receiver.queue.get_nowait()
        getter = asyncio.ensure_future(self.receiver.queue.get())
        try:
            waits: list[asyncio.Future[Any]] = [getter, self.output.failed]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if self.output.failed.done():
            self.output.failed.result()
        return getter.result()

    def _stop_after(self, event: Event) -> ListenOutcome | None:
        if not event.task.status.terminal:
            return None
        self.finals += 1
        if self.rules.for_id is not None and event.task.id == self.rules.for_id:
            return ListenOutcome(FOR_DONE, event, self.finals)
        if self.rules.count is not None and self.finals >= self.rules.count:
            return ListenOutcome(COUNT_DONE, event, self.finals)
        return None

    async def _save(self, directory: Path, raw: RawDelivery) -> None:
        self.saved += 1
        stamp = iso_utc(raw.received_at).replace("-", "").replace(":", "")
        record = saved_record(iso_utc(raw.received_at), raw.method, raw.path, raw.query, raw.headers, raw.body,
                              raw.answered, verified=raw.verified)
        try:
            await asyncio.to_thread(save_delivery, directory, f"{stamp}-{self.saved:06d}.json", record)
        except OSError as exc:
            self.receiver.notes.note("save", f"could not save a delivery in {directory}: {exc.strerror or exc}")

    async def _exec(self, event: Event) -> None:
        data = json.dumps(event.as_json(), ensure_ascii=False).encode("utf-8") + b"\n"
        code = await run_exec(self.actions.exec_command or "", data, stdout=self.actions.exec_stdout)
        if code != 0:
            self.note(f"--exec for {_what(event)} exited with status {code}")

    async def _forward(self, event: Event) -> None:
        assert self.forwarder is not None
        result = await self.forwarder.send(event.raw.headers, event.raw.body)
        verdict = "forwarded" if result.ok else "could not forward"
        self.note(f"{verdict} {_what(event)} to {self.forwarder.url}: {result.describe()}")


async def listen(receiver: Receiver, rules: StopRules, actions: Actions, *,
                 on_event: Callable[[Event], None], note: Note) -> ListenOutcome:
    """Act on the receiver's deliveries until a stop rule is met (without rules: until cancelled)."""
    session = _Session(receiver, rules, actions, on_event, note)
    async with AsyncExitStack() as stack:
        if actions.forward_to:
            session.forwarder = await stack.enter_async_context(
                Forwarder(actions.forward_to, on_retry=_retry_note(note, actions.forward_to)))
        stack.push_async_callback(session.output.close)
        stack.push_async_callback(session.exec_worker.close)
        stack.push_async_callback(_close_forwards, session.forward_worker, note, actions.forward_to)
        try:
            outcome = await within(session.consume(), rules.timeout)
        except asyncio.TimeoutError:
            return ListenOutcome(TIMED_OUT, None, session.finals)
        await session.exec_worker.drain()
        await session.forward_worker.drain()
        return outcome


async def _close_forwards(worker: SerialWorker, note: Note, url: str | None) -> None:
    """Stop forwarding; say so when events were still waiting to reach the app (Ctrl-C)."""
    dropped = await worker.close()
    if dropped and url:
        note(f"stopped before forwarding {dropped} event(s) to {url}: they were dropped "
             "(--save keeps deliveries for --replay)")


def _hold(item: Received) -> Callable[[], None]:
    """One more holder of ``item``'s bytes; returns what lets go of them."""
    return item.claim.hold() if item.claim is not None else _nothing


def _what(event: Event) -> str:
    return f"{one_line(event.task.id)} {event.task.status.value}"  # the id comes from whoever posted


def _retry_note(note: Note, url: str) -> Callable[[int, str, float], None]:
    def on_retry(attempt: int, detail: str, pause: float) -> None:
        if attempt == 1:  # one line per delivery, not one per attempt
            note(f"{url} is not taking deliveries ({detail}); retrying with backoff")

    return on_retry

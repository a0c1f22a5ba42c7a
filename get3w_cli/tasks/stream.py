"""``--via stream``: a Get3W v3 submit answered with Server-Sent Events, followed to the task's end.

- the task id is journalled the moment an event names it (the ledger, through ``_Run.submitted``);
- progress reaches the observer as the phase (``streaming 40%``): the spinner shows it;
- a stream that breaks, ends before the task does, or outlasts --timeout continues by polling
  that id, never by a second submit; one that breaks before naming an id may hide a task: the row
  is ``unknown`` and the command exits 6;
- a model that refuses to stream (a 4xx naming streaming, before any task exists) is submitted
  once more without it, then polled; a provider that answers its usual envelope instead of a
  stream gave the task: it is polled;
- a stream that ends the task without ever naming its id gives a local id (``local-<hex>``): the
  outputs are kept and journalled, but the provider cannot be asked about that id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import G3wError, NetworkError, SubmitUnknownError
from get3w_cli.names import OnTimeout, Via
from get3w_cli.providers import nothing_created, refuses_streaming
from get3w_cli.records import Status, Task
from get3w_cli.tasks.ledger import post_with_grace
from get3w_cli.timeouts import within

if TYPE_CHECKING:
    from get3w_cli.providers import Adapter, SubmitStream
    from get3w_cli.providers.stream_update import StreamUpdate
    from get3w_cli.tasks.flow import _Run
    from get3w_cli.waiting import Outcome, WaitPlan

LOCAL_ID_PREFIX = "local-"
_LOCAL_ID_BYTES = 8
_PERCENT = 100


class _Follower:
    """What one stream has said so far about its task."""

    def __init__(self, run: _Run, adapter: Adapter, model: str) -> None:
        self.run, self.adapter, self.model = run, adapter, model
        self.task: Task | None = None  # set once an event names the task
        self.outputs: tuple[str, ...] = ()
        self.progress: float | None = None

    async def follow(self, stream: SubmitStream) -> Task | None:
        """Read events until one ends the task (returned), or the stream ends (None)."""
        async for update in stream:
            self._learn(update)
            if update.status is not None and update.status.terminal:
                return self._final(update)
        return None

    def _learn(self, update: StreamUpdate) -> None:
        if update.task_id and self.task is None:
            status = update.status if update.status and not update.status.terminal else Status.CREATED
            self.task = Task(id=update.task_id, provider=self.adapter.provider, api=self.adapter.api,
                             model=self.model, status=status, raw=dict(update.raw))
            self.run.submitted(self.task)  # journalled now: a break from here on is polled
        if update.outputs:
            self.outputs = update.outputs if update.status is Status.COMPLETED else (*self.outputs, *update.outputs)
        if update.progress is not None:
            self.progress = update.progress
        if update.progress is not None or update.log:
            done = f" {round(self.progress * _PERCENT)}%" if self.progress is not None else ""
            self.run.observer.notify("phase", f"streaming{done}" + (f": {update.log}" if update.log else ""))

    def _final(self, update: StreamUpdate) -> Task:
        assert update.status is not None
        if self.task is None:  # the stream never named the task: keep its end under a local id
            local = Task(id=LOCAL_ID_PREFIX + secrets.token_hex(_LOCAL_ID_BYTES), provider=self.adapter.provider,
                         api=self.adapter.api, model=self.model, status=Status.CREATED)
            self.run.submitted(local)
            self.run.observer.notify("note", f"the stream never named its task id; recorded as {local.id}")
            self.task = local
        # A completed task got all the way; a failed one as far as the stream last said.
        progress = 1.0 if update.status is Status.COMPLETED else self.progress
        return dataclasses.replace(self.task, status=update.status, outputs=self.outputs,
                                   error=update.error, raw=dict(update.raw), progress=progress)


async def stream_task(run: _Run, adapter: Adapter, model: str, values: dict[str, Any], plan: WaitPlan) -> Outcome:
    """Submit with ``"stream": true`` and follow the events (see the module doc); the outcome.

    Raises:
        SubmitUnknownError: the stream broke (or --timeout passed) before naming the task.
        WaitTimeoutError, and what submitting and polling raise.
    """
    from get3w_cli.providers import StreamSubmitter
    from get3w_cli.waiting import Outcome

    assert isinstance(adapter, StreamSubmitter)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.timeout
    follower = _Follower(run, adapter, model)
    async with AsyncExitStack() as stack:
        try:
            stream = await stack.enter_async_context(adapter.submit_stream(model, values))
        except G3wError as exc:
            await _open_failed(run, adapter, model, values, exc)
            return await _poll(run, adapter, plan, deadline)
        except asyncio.CancelledError:
            await _interrupted(run, adapter, follower, plan)  # the POST may have arrived
            raise
        if stream.answer is not None:
            run.submitted(stream.answer)
            run.observer.notify("note", "the provider answered without streaming; polling")
            return await _poll(run, adapter, plan, deadline)
        try:
            final = await within(follower.follow(stream), max(deadline - loop.time(), 0.0))
            why = "the stream ended before the task did"
        except asyncio.TimeoutError:
            final, why = None, "the stream outlasted --timeout"
        except NetworkError as exc:
            final, why = None, exc.message
        except asyncio.CancelledError:
            await _interrupted(run, adapter, follower, plan)
            raise
    if final is not None:
        return Outcome(task=final, via=Via.STREAM, elapsed=loop.time() - run.started)
    if follower.task is None:
        message = f"{why}, before naming the task; a task may exist"
        run.ledger.unknown(message)
        raise SubmitUnknownError(message)
    run.observer.notify("note", f"{why}; polling task {follower.task.id}")
    return await _poll(run, adapter, plan, deadline)


async def _open_failed(run: _Run, adapter: Adapter, model: str, values: dict[str, Any], exc: G3wError) -> None:
    """A streamed submit that failed to open: a refusal to stream is submitted again without it
    (``run.task`` is then that task); anything else is journalled and raised, as for a submit."""
    if refuses_streaming(exc):
        run.observer.notify("note", f"{model} does not stream ({exc.message}); submitting it without streaming")
        await post_with_grace(run.ledger, adapter, model, values, webhook_url=None, sync=False,
                              answered=run.submitted)
        return
    if nothing_created(exc):
        run.ledger.forget()
        raise exc
    run.ledger.unknown(exc.message)
    if isinstance(exc, SubmitUnknownError):
        raise exc
    raise SubmitUnknownError(f"the answer to the submit could not be used ({exc.message}); "
                             "the task may have been created") from exc


async def _poll(run: _Run, adapter: Adapter, plan: WaitPlan, deadline: float) -> Outcome:
    """Follow the known task by polling, within what is left of --timeout."""
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
    return await run.wait(adapter, dataclasses.replace(plan, mode=Via.POLL, timeout=remaining), None,
                          via_if_done=None)


async def _interrupted(run: _Run, adapter: Adapter, follower: _Follower, plan: WaitPlan) -> None:
    """Ctrl-C while streaming: the task is reported (or, without an id, journalled as unknown) and
    cancelled only when --on-timeout cancel asks, after a look at it."""
    if follower.task is None:
        run.ledger.unknown("interrupted while streaming, before the task was named; a task may exist")
        run.observer.notify("warn", "interrupted before the stream named the task: a task may exist "
                                    "(journalled as unknown; see g3w history)")
        return
    run.report(follower.task)
    if plan.on_timeout == OnTimeout.CANCEL and not follower.task.id.startswith(LOCAL_ID_PREFIX):
        from get3w_cli.waiting import cancel_quietly

        await asyncio.shield(cancel_quietly(adapter, follower.task.id, run.observer.notify))

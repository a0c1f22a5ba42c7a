"""The waiting engine: callbacks raced against adaptive polling, with a deadline (pure asyncio).

Its timing tests run in virtual time (``conftest.run_in_virtual_time``, looptime): the loop's
clock jumps to the next timer, so a test asserts the exact instant of every GET and of the
outcome, with the production intervals, and takes no real time. Tests with real sockets (the
listener) run on a real loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import run_in_virtual_time

from get3w_cli import constants as C
from get3w_cli.errors import NetworkError, RejectedError, TransientError, WaitTimeoutError
from get3w_cli.names import Via
from get3w_cli.payloads import abstrakt_job, get3w_task
from get3w_cli.records import Status, Task
from get3w_cli.waiting import Outcome, WaitPlan, cancel_quietly, first_poll_delay, wait_for
from get3w_cli.webhooks.inbox import Delivery, Inbox
from get3w_cli.webhooks.listener import CallbackListener
from get3w_cli.webhooks.signatures import sign_abstrakt, sign_get3w

TASK_ID = "pred_wait"
REAL_OUTPUT = "https://cdn.example/real.png"


class FakeAdapter:
    """An Adapter whose task completes ``done_after`` seconds after it is made; logs every call."""

    provider = "get3w"
    api = "v3"
    has_sync = False

    def __init__(self, *, done_after: float = 0.0, final: Status = Status.COMPLETED,
                 errors: list[Exception] | None = None, can_cancel: bool = True, hang: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.done_after, self.final = done_after, final
        self.errors = list(errors or [])
        self.can_cancel, self.hang = can_cancel, hang
        self.gets: list[float] = []
        self.cancels: list[str] = []

    def now(self) -> float:
        return self.loop.time() - self.t0

    async def submit(self, model: str, input: Any, *, webhook_url: str | None = None, sync: bool = False) -> Task:
        raise AssertionError("the waiter never submits")

    async def get(self, task_id: str) -> Task:
        self.gets.append(self.now())
        if self.errors:
            raise self.errors.pop(0)
        if self.hang:
            await asyncio.sleep(3600)
        done = self.now() >= self.done_after
        status = self.final if done else Status.PROCESSING
        outputs = (REAL_OUTPUT,) if status is Status.COMPLETED else ()
        return Task(id=task_id, provider="get3w", api="v3", model="get3w/flux-dev", status=status, outputs=outputs)

    async def cancel(self, task_id: str) -> Task:
        self.cancels.append(task_id)
        return Task(id=task_id, provider="get3w", api="v3", model="", status=Status.CANCELLED)


def submitted(estimated: float | None = None) -> Task:
    return Task(id=TASK_ID, provider="get3w", api="v3", model="get3w/flux-dev", status=Status.CREATED,
                estimated_duration=estimated)


def delivery(status: Status, *, verified: bool, outputs: tuple[str, ...] = ()) -> Delivery:
    task = Task(id=TASK_ID, provider="get3w", api="v3", model="get3w/flux-dev", status=status, outputs=outputs)
    return Delivery(received_at=time.time(), provider="get3w", task=task, verified=verified, headers={},
                    body=b"{}", payload={"id": TASK_ID, "status": status.value})


class Notes:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, kind: str, text: str) -> None:
        self.items.append((kind, text))

    def text(self) -> str:
        return "\n".join(text for kind, text in self.items if kind == "note")


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    """In virtual time: every instant the test reads from the loop is exact."""
    return run_in_virtual_time(test)


def run_real(test: Callable[[], Awaitable[Any]]) -> Any:
    """On a real loop, for tests that talk to the listener over real sockets."""
    return asyncio.run(asyncio.wait_for(test(), 10))


def later(delay: float, action: Callable[[], object]) -> None:
    asyncio.get_running_loop().call_later(delay, action)


def at(*instants: float) -> list[Any]:
    """GET times as asserted: exact up to the float arithmetic of adding intervals."""
    return [pytest.approx(t, abs=1e-6) for t in instants]


def test_signed_callback_is_trusted_without_a_get() -> None:
    """A verified final callback ends the wait at once; the provider is not asked."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        later(3, lambda: inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/x.png",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert outcome.task.status is Status.COMPLETED
    assert outcome.task.outputs == ("https://cb/x.png",)
    assert (outcome.task.provider, outcome.task.api) == ("get3w", "v3")
    assert adapter.gets == []
    assert outcome.elapsed == pytest.approx(3.0, abs=1e-6)  # the callback's instant, not a poll's


def test_unsigned_callback_is_confirmed_with_exactly_one_get() -> None:
    """An unsigned final callback is a hint: one GET confirms it, and the GET's answer is what counts."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=0), Inbox()
        later(2, lambda: inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert adapter.gets == at(2.0)  # confirmed when it came
    assert outcome.task.outputs == (REAL_OUTPUT,)


def test_forged_unsigned_completion_while_running_is_ignored() -> None:
    """A forged 'completed' for a running task is dropped and does not mask the genuine callback."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        later(2, lambda: inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",))))
        later(15, lambda: inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/ok.png",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60)
        return await wait_for(adapter, submitted(), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert outcome.task.outputs == ("https://cb/ok.png",)
    assert outcome.elapsed == pytest.approx(15.0, abs=1e-6)
    assert adapter.gets == at(2.0)
    assert "ignored an unconfirmed callback" in notes.text()


def test_no_callback_falls_back_to_polling_after_fallback_after() -> None:
    """Without a callback, polling starts after fallback_after, with a note saying so."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter = FakeAdapter(done_after=0)
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=30)
        return await wait_for(adapter, submitted(), plan, inbox=Inbox(), notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.POLL
    assert outcome.task.status is Status.COMPLETED
    assert adapter.gets == at(30.0)
    assert "no callback within 30s; polling" in notes.text()
    assert ("phase", "polling") in notes.items


def test_default_fallback_is_at_least_a_minute_or_twice_the_estimate() -> None:
    """--fallback-after defaults to max(60s, 2 x estimated_duration)."""
    plan = WaitPlan(mode=Via.WEBHOOK)
    assert plan.fallback_for(submitted()) == C.FALLBACK_MIN
    assert plan.fallback_for(submitted(estimated=100)) == 200
    assert WaitPlan(fallback_after=3).fallback_for(submitted(estimated=100)) == 3


def test_default_fallback_is_when_polling_starts() -> None:
    """No --fallback-after, no callback: the first GET comes at FALLBACK_MIN, then polls back off."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=C.FALLBACK_MIN + 1)
        await wait_for(adapter, submitted(estimated=4), WaitPlan(mode=Via.WEBHOOK, poll_max=10), inbox=Inbox())
        return adapter

    adapter = run(main)
    assert adapter.gets == at(C.FALLBACK_MIN, C.FALLBACK_MIN + 4)


def test_first_poll_waits_for_the_estimated_duration() -> None:
    """The first poll comes at the provider's estimate, not at once."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0)
        await wait_for(adapter, submitted(estimated=7), WaitPlan(mode=Via.POLL, timeout=600, poll_max=10))
        return adapter

    adapter = run(main)
    assert adapter.gets == at(7.0)


@pytest.mark.parametrize(
    ("estimate", "poll_max", "expected"),
    [(None, 10.0, C.POLL_INITIAL), (3.0, 10.0, 3.0), (0.01, 10.0, C.POLL_MIN), (60.0, 10.0, 10.0), (None, 0.5, 0.5)],
)
def test_first_poll_delay_is_the_estimate_clamped(estimate: float | None, poll_max: float, expected: float) -> None:
    """first_poll_delay: the estimate (else POLL_INITIAL), within [POLL_MIN, poll_max]."""
    assert first_poll_delay(submitted(estimated=estimate), WaitPlan(poll_max=poll_max)) == pytest.approx(expected)


def test_polling_backs_off_up_to_poll_max() -> None:
    """Intervals grow by the back-off factor (x1.5) from the estimate and never exceed --poll-max."""
    assert C.POLL_BACKOFF_FACTOR == 1.5  # the instants below are worked out with it

    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=12)
        await wait_for(adapter, submitted(estimated=1), WaitPlan(mode=Via.POLL, timeout=600, poll_max=3))
        return adapter

    adapter = run(main)
    # Gaps 1 (the estimate), 1, 1.5, 2.25, then 3 = --poll-max each time; done at 12.
    assert adapter.gets == at(1.0, 2.0, 3.5, 5.75, 8.75, 11.75, 14.75)


def test_transient_poll_errors_do_not_end_the_wait() -> None:
    """A 5xx/429 or a network error while polling is noted and the wait goes on, backing off."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        errors: list[Exception] = [TransientError("HTTP 503", status=503), NetworkError("connection reset")]
        adapter = FakeAdapter(done_after=0, errors=errors)
        plan = WaitPlan(mode=Via.POLL, timeout=600, poll_max=2)
        return await wait_for(adapter, submitted(estimated=1), plan, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == Via.POLL
    assert adapter.gets == at(1.0, 2.0, 3.5)
    assert notes.text().count("poll failed") == 2


def test_retry_after_of_a_failed_poll_is_honoured() -> None:
    """A poll answered 429 with retry_after waits exactly that long (not the shorter interval)."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0, errors=[TransientError("HTTP 429", status=429, retry_after=7)])
        await wait_for(adapter, submitted(estimated=1), WaitPlan(mode=Via.POLL, timeout=600, poll_max=2))
        return adapter

    adapter = run(main)
    assert adapter.gets == at(1.0, 8.0)


def test_refused_poll_ends_the_wait() -> None:
    """A 404 while polling is final: the error is raised, not retried forever."""
    async def main() -> None:
        adapter = FakeAdapter(errors=[RejectedError("HTTP 404", status=404)])
        await wait_for(adapter, submitted(estimated=1), WaitPlan(mode=Via.POLL, timeout=600))

    with pytest.raises(RejectedError):
        run(main)


def test_timeout_detaches_by_default() -> None:
    """The deadline raises WaitTimeoutError, at the deadline, and leaves the task running."""
    async def main() -> tuple[pytest.ExceptionInfo[WaitTimeoutError], FakeAdapter]:
        adapter = FakeAdapter(done_after=1000)
        with pytest.raises(WaitTimeoutError) as info:
            await wait_for(adapter, submitted(estimated=5), WaitPlan(mode=Via.POLL, timeout=30, poll_max=10))
        assert adapter.now() == pytest.approx(30.0, abs=1e-6)  # raised at the deadline itself
        return info, adapter

    info, adapter = run(main)
    assert adapter.gets == at(5.0, 10.0, 17.5, 27.5)  # the next poll (37.5) is past the deadline
    assert info.value.task_id == TASK_ID and not info.value.cancelled
    assert f"g3w wait {TASK_ID}" in (info.value.hint or "")
    assert adapter.cancels == []


def test_timeout_with_on_timeout_cancel_cancels_the_task() -> None:
    """--on-timeout cancel: the deadline cancels the task at the provider, after a look."""
    async def main() -> tuple[pytest.ExceptionInfo[WaitTimeoutError], FakeAdapter]:
        adapter = FakeAdapter(done_after=1000)
        plan = WaitPlan(mode=Via.POLL, timeout=20, poll_max=10, on_timeout="cancel")
        with pytest.raises(WaitTimeoutError) as info:
            await wait_for(adapter, submitted(estimated=5), plan)
        return info, adapter

    info, adapter = run(main)
    assert info.value.cancelled
    assert adapter.cancels == [TASK_ID]
    assert adapter.gets == at(5.0, 10.0, 17.5, 20.0)  # the last: the look at the deadline


def test_timeout_cuts_a_hanging_poll_short() -> None:
    """--timeout bounds the whole wait, even while a poll request is stuck (long Retry-After)."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(hang=True)
        with pytest.raises(WaitTimeoutError):
            await wait_for(adapter, submitted(estimated=5), WaitPlan(mode=Via.POLL, timeout=30))
        assert adapter.now() == pytest.approx(30.0, abs=1e-6)  # not the hour the GET would take
        return adapter

    assert run(main).gets == at(5.0)


def test_unconfirmable_callback_falls_back_to_polling() -> None:
    """When the confirming GET fails transiently, the wait goes on by polling instead of failing."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=0, errors=[TransientError("HTTP 429", status=429)]), Inbox()
        later(2, lambda: inbox.put(delivery(Status.COMPLETED, verified=False)))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60, poll_max=10)
        return await wait_for(adapter, submitted(estimated=3), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == Via.POLL
    assert adapter.gets == at(2.0, 5.0)  # the hint's GET, then one interval (3 s) later: not the 60 s fallback
    assert outcome.elapsed == pytest.approx(5.0, abs=1e-6)
    assert "could not confirm a callback" in notes.text()


@pytest.mark.parametrize(("on_timeout", "cancels"), [("detach", []), ("cancel", [TASK_ID])])
def test_interrupting_the_wait_cancels_the_task_only_when_asked(on_timeout: str, cancels: list[str]) -> None:
    """Ctrl-C (task cancellation) cancels at the provider only with --on-timeout cancel."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=100)
        plan = WaitPlan(mode=Via.POLL, timeout=600, poll_max=10, on_timeout=on_timeout)
        waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=5), plan))
        await asyncio.sleep(2)  # virtual: interrupted at t=2, before the first poll (t=5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return adapter

    adapter = run(main)
    assert adapter.cancels == cancels
    assert adapter.gets == (at(2.0) if cancels else [])  # cancelling looks first


def test_already_final_task_returns_at_once() -> None:
    """A sync answer that is already final is returned as is, with the given via."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter = FakeAdapter()
        final = Task(id=TASK_ID, provider="get3w", api="v1", model="m", status=Status.COMPLETED, outputs=("u",))
        return await wait_for(adapter, final, WaitPlan(mode=Via.POLL), via_if_done=Via.SYNC), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.SYNC and outcome.elapsed == 0.0 and adapter.gets == []


def test_failed_task_is_returned_not_raised() -> None:
    """A failed task is an outcome (the CLI decides the exit code), not an exception."""
    async def main() -> Outcome:
        adapter = FakeAdapter(done_after=0, final=Status.FAILED)
        return await wait_for(adapter, submitted(estimated=1), WaitPlan(mode=Via.POLL, timeout=600))

    assert run(main).task.status is Status.FAILED


# --- issue #8: forged callbacks, and the engine's fixes ------------------------------------------

SECRET = "whsec_waiting"


class Watched(FakeAdapter):
    """A FakeAdapter that also hands each GET's time to a queue, so a test can wait for a GET."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.got: asyncio.Queue[float] = asyncio.Queue()

    async def get(self, task_id: str) -> Task:
        task = await super().get(task_id)
        self.got.put_nowait(self.gets[-1])
        return task


def completed_body(outputs: list[str]) -> bytes:
    return json.dumps({"id": TASK_ID, "job_id": TASK_ID, "model": "get3w/flux-dev", "status": "completed",
                       "outputs": outputs}).encode()


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers or {}) as resp:
        return resp.status


def test_a_flood_of_forged_hints_costs_at_most_one_get_per_poll_interval() -> None:
    """Hundreds of unsigned forged 'completed' posts at the real listener: one confirming GET per interval."""
    async def main() -> tuple[FakeAdapter, int, CallbackListener]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        async with CallbackListener(inbox) as listener:
            plan = WaitPlan(mode=Via.WEBHOOK, timeout=1.0, fallback_after=60, poll_max=10)
            waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=0.4), plan, inbox=inbox))
            posts = 0
            async with aiohttp.ClientSession() as session:
                while not waiter.done():
                    async with session.post(listener.local_url, data=completed_body(["https://evil/x"])) as resp:
                        assert resp.status == 200  # a hint, acknowledged
                    posts += 1
            with pytest.raises(WaitTimeoutError):
                await waiter
        return adapter, posts, listener

    adapter, posts, listener = run_real(main)
    assert posts >= 50 and listener.stats.accepted == posts  # every one reached the waiter as a hint
    # The interval starts at 0.4 s and grows x1.5 after each GET: 0 s, 0.4 s, then past the 1 s deadline.
    assert 1 <= len(adapter.gets) <= 3, adapter.gets


def test_a_genuine_hint_inside_the_interval_is_confirmed_at_the_intervals_end() -> None:
    """After a forged hint's GET, the real (unsigned) callback is not ignored: the next GET confirms it."""
    async def main() -> tuple[Outcome, Watched]:
        adapter, inbox = Watched(done_after=100), Inbox()
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60, poll_max=10)
        waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=3), plan, inbox=inbox))
        inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",)))
        await adapter.got.get()  # the forged hint was checked: still running
        adapter.done_after = 0  # now the task really ends, and its unsigned callback comes in
        inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/y",)))
        return await waiter, adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK and outcome.task.outputs == (REAL_OUTPUT,)
    # The interval was 3 s and grew to 4.5 s with the first GET: the second comes at its end,
    # far from the 60 s fallback.
    assert adapter.gets == at(0.0, 4.5)
    assert outcome.elapsed == pytest.approx(4.5, abs=1e-6)


def test_a_callback_verified_by_another_providers_secret_is_only_a_hint() -> None:
    """A delivery signed with the Abstrakt secret does not prove a Get3W task's end: a GET is asked."""
    notes = Notes()

    async def main() -> FakeAdapter:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        async with CallbackListener(inbox, secrets={"get3w": SECRET, "abstrakt": "abstrakt-secret"}) as listener:
            body = completed_body(["https://evil/x"])
            stamp = str(int(time.time()))
            signature = sign_abstrakt("abstrakt-secret", body, stamp)
            headers = {"X-Abstrakt-Timestamp": stamp, "X-Abstrakt-Signature": signature}
            assert await post(listener.local_url, body, headers) == 200  # verified, by Abstrakt's secret
            plan = WaitPlan(mode=Via.WEBHOOK, timeout=0.5, fallback_after=60)
            with pytest.raises(WaitTimeoutError):
                await wait_for(adapter, submitted(), plan, inbox=inbox, notify=notes)
        return adapter

    adapter = run_real(main)
    assert len(adapter.gets) == 1  # confirmed, found running, ignored
    assert "ignored an unconfirmed callback" in notes.text()


def test_a_signature_rejection_is_said_once_and_the_task_is_checked_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """A wrong secret: the first 401 makes the waiter say so (not the listener's log) and GET now, then poll."""
    notes = Notes()

    async def main() -> tuple[Outcome, Watched]:
        adapter, inbox = Watched(done_after=100), Inbox()
        async with CallbackListener(inbox, secrets={"get3w": SECRET}) as listener:
            plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=60, poll_max=0.2)
            waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=0.05), plan, inbox=inbox,
                                                    notify=notes))
            body = completed_body([REAL_OUTPUT])
            wrong = {"X-Get3W-Signature": sign_get3w("not-the-secret", body)}
            assert await post(listener.local_url, body, wrong) == 401
            await adapter.got.get()  # checked at once, not after the 60 s fallback
            assert await post(listener.local_url, body, wrong) == 401
            adapter.done_after = 0
            return await waiter, adapter

    with caplog.at_level(logging.WARNING):
        outcome, _adapter = run_real(main)
    assert outcome.via == Via.POLL and outcome.task.status is Status.COMPLETED
    assert notes.text().count("the webhook secret looks wrong") == 1
    assert ("phase", "polling") in notes.items
    assert caplog.records == []  # nothing printed behind the spinner's back


def test_a_final_submit_answer_is_webhook_when_its_callback_came_first_else_sync() -> None:
    """via: a callback that beat a final submit answer makes it 'webhook'; a final answer alone is 'sync'."""
    async def main() -> tuple[list[str | None], FakeAdapter]:
        adapter = FakeAdapter()
        final = Task(id=TASK_ID, provider="get3w", api="v3", model="get3w/flux-dev", status=Status.COMPLETED,
                     outputs=(REAL_OUTPUT,))
        inbox = Inbox()
        async with CallbackListener(inbox, secrets={"get3w": SECRET}) as listener:
            body = completed_body([REAL_OUTPUT])
            assert await post(listener.local_url, body, {"X-Get3W-Signature": sign_get3w(SECRET, body)}) == 200
            early = await wait_for(adapter, final, WaitPlan(mode=Via.WEBHOOK, timeout=5), inbox=inbox)
        alone = await wait_for(adapter, final, WaitPlan(mode=Via.WEBHOOK, timeout=5), inbox=Inbox())
        no_channel = await wait_for(adapter, final, WaitPlan(mode=Via.POLL, timeout=5))
        polled = await wait_for(adapter, final, WaitPlan(mode=Via.POLL, timeout=5), via_if_done=Via.POLL)
        return [early.via, alone.via, no_channel.via, polled.via], adapter

    vias, adapter = run_real(main)
    assert vias == [Via.WEBHOOK, Via.SYNC, Via.SYNC, Via.POLL]
    assert adapter.gets == []


@pytest.mark.parametrize(("word", "status"), [
    ("timeout", Status.FAILED), ("expired", Status.FAILED), ("error", Status.FAILED), ("aborted", Status.FAILED),
    ("canceled", Status.CANCELLED), ("deleted", Status.CANCELLED), ("cancelled", Status.CANCELLED),
    ("pending", Status.CREATED), ("queued", Status.CREATED), ("running", Status.PROCESSING),
    ("succeeded", Status.COMPLETED), ("success", Status.COMPLETED), ("COMPLETED", Status.COMPLETED),
])
def test_status_words_map_onto_the_vocabulary(word: str, status: Status) -> None:
    """CONTRACT 1: every provider's words, in both adapters' parsers; a known word is not 'unknown'."""
    for task in (get3w_task({"id": "t", "status": word}, api="v3"), abstrakt_job({"job_id": "j", "status": word})):
        assert (task.status, task.unknown_status) == (status, None)


def test_an_unknown_status_word_counts_as_processing_and_is_kept_on_the_task() -> None:
    """Any other word is processing, and the Task says which word it was (printable, short)."""
    task = get3w_task({"id": "t", "status": "warming_up"}, api="v3")
    assert (task.status, task.unknown_status) == (Status.PROCESSING, "warming_up")
    odd = abstrakt_job({"job_id": "j", "status": "\x1b[2J" + "x" * 100})
    assert odd.status is Status.PROCESSING and odd.unknown_status is not None
    assert odd.unknown_status.isprintable() and len(odd.unknown_status) <= C.STATUS_WORD_MAX_CHARS
    assert get3w_task({"id": "t"}, api="v3").unknown_status is None  # no word, nothing to say


class Words(FakeAdapter):
    """Answers each GET with the next word of ``words`` (unknown ones), then completes."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(done_after=100)
        self.words = list(words)

    async def get(self, task_id: str) -> Task:
        self.gets.append(self.now())
        if not self.words:
            return Task(id=task_id, provider="get3w", api="v3", model="m", status=Status.COMPLETED, outputs=("u",))
        return get3w_task({"id": task_id, "status": self.words.pop(0)}, api="v3")


def test_the_waiter_says_once_per_word_that_it_did_not_know_it() -> None:
    """Unknown words keep the wait going; each distinct word is said once."""
    notes = Notes()

    async def main() -> Outcome:
        adapter = Words(["warming_up", "warming_up", "rendering", "warming_up"])
        return await wait_for(adapter, submitted(estimated=1), WaitPlan(mode=Via.POLL, timeout=600, poll_max=2),
                              notify=notes)

    outcome = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == Via.POLL
    assert notes.text().count("'warming_up'") == 1 and notes.text().count("'rendering'") == 1
    assert "counting it as processing" in notes.text()


def test_on_timeout_cancel_looks_first_and_leaves_a_finished_task_alone() -> None:
    """--on-timeout cancel: a task that a GET shows finished is not cancelled (v3 would delete its
    outputs); the look found the result, so the wait ends with it instead of a timeout."""
    notes = Notes()
    adapters: list[FakeAdapter] = []

    async def main() -> Outcome:
        adapters.append(FakeAdapter(done_after=0))  # finished, but the first poll is due after the deadline
        plan = WaitPlan(mode=Via.POLL, timeout=5, poll_max=10, on_timeout="cancel")
        return await wait_for(adapters[0], submitted(estimated=10), plan, notify=notes)

    outcome = run(main)
    assert (outcome.task.status, outcome.via) == (Status.COMPLETED, Via.POLL)
    assert adapters[0].cancels == []
    assert adapters[0].gets == at(5.0)  # the look, at the deadline
    assert outcome.elapsed == pytest.approx(5.0, abs=1e-6)
    assert f"task {TASK_ID} already completed; not cancelling it" in notes.text()


def test_ctrl_c_with_on_timeout_cancel_looks_first_too() -> None:
    """Interrupted with --on-timeout cancel: a finished task is left alone, a running one is cancelled."""
    async def interrupt(done_after: float) -> FakeAdapter:
        adapter, started = FakeAdapter(done_after=done_after), asyncio.Event()
        plan = WaitPlan(mode=Via.POLL, timeout=5, poll_max=10, on_timeout="cancel")
        waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=10), plan,
                                                notify=lambda kind, text: started.set()))
        await started.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return adapter

    async def main() -> tuple[FakeAdapter, FakeAdapter]:
        return await interrupt(0), await interrupt(100)

    finished, running = run(main)
    assert (finished.cancels, len(finished.gets)) == ([], 1)
    assert (running.cancels, len(running.gets)) == ([TASK_ID], 1)


def test_cancel_is_not_sent_when_the_look_fails() -> None:
    """Not knowing whether the task finished, g3w does not risk deleting a paid result."""
    notes = Notes()

    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=100, errors=[NetworkError("connection reset")])
        assert await cancel_quietly(adapter, TASK_ID, notes) is False
        return adapter

    assert run(main).cancels == []
    assert "could not look at task" in notes.text()

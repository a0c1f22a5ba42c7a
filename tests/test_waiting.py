"""The waiting engine: callbacks raced against adaptive polling, with a deadline (pure asyncio)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable

import aiohttp
import pytest

from get3w_cli import constants as C
from get3w_cli.errors import (
    NetworkError,
    RejectedError,
    TransientError,
    WaitTimeoutError,
)
from get3w_cli.names import Via
from get3w_cli.payloads import abstrakt_job, get3w_task
from get3w_cli.records import Status, Task
from get3w_cli.waiting import (
    Outcome,
    WaitPlan,
    cancel_quietly,
    first_poll_delay,
    wait_for,
)
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
    return asyncio.run(asyncio.wait_for(test(), 10))


def later(delay: float, action: Callable[[], object]) -> None:
    asyncio.get_running_loop().call_later(delay, action)


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let poll intervals go below the production floor so back-off tests take milliseconds."""
    monkeypatch.setattr(C, "POLL_MIN", 0.01)


def test_signed_callback_is_trusted_without_a_get() -> None:
    """A verified final callback ends the wait at once; the provider is not asked."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        later(0.05, lambda: inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/x.png",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert outcome.task.status is Status.COMPLETED
    assert outcome.task.outputs == ("https://cb/x.png",)
    assert (outcome.task.provider, outcome.task.api) == ("get3w", "v3")
    assert adapter.gets == []
    assert 0.04 <= outcome.elapsed < 1


def test_unsigned_callback_is_confirmed_with_exactly_one_get() -> None:
    """An unsigned final callback is a hint: one GET confirms it, and the GET's answer is what counts."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=0), Inbox()
        later(0.02, lambda: inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert len(adapter.gets) == 1
    assert outcome.task.outputs == (REAL_OUTPUT,)


def test_forged_unsigned_completion_while_running_is_ignored() -> None:
    """A forged 'completed' for a running task is dropped and does not mask the genuine callback."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        later(0.02, lambda: inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",))))
        later(0.15, lambda: inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/ok.png",))))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK
    assert outcome.task.outputs == ("https://cb/ok.png",)
    assert outcome.elapsed >= 0.14
    assert len(adapter.gets) == 1
    assert "ignored an unconfirmed callback" in notes.text()


def test_no_callback_falls_back_to_polling_after_fallback_after() -> None:
    """Without a callback, polling starts after fallback_after, with a note saying so."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter = FakeAdapter(done_after=0)
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=0.2)
        return await wait_for(adapter, submitted(), plan, inbox=Inbox(), notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.POLL
    assert outcome.task.status is Status.COMPLETED
    assert len(adapter.gets) == 1 and 0.19 <= adapter.gets[0] < 1.0
    assert "no callback within 0.2s; polling" in notes.text()
    assert ("phase", "polling") in notes.items


def test_default_fallback_is_at_least_a_minute_or_twice_the_estimate() -> None:
    """--fallback-after defaults to max(60s, 2 x estimated_duration)."""
    plan = WaitPlan(mode=Via.WEBHOOK)
    assert plan.fallback_for(submitted()) == C.FALLBACK_MIN
    assert plan.fallback_for(submitted(estimated=100)) == 200
    assert WaitPlan(fallback_after=3).fallback_for(submitted(estimated=100)) == 3


def test_first_poll_waits_for_the_estimated_duration() -> None:
    """The first poll comes near the provider's estimate, not at once."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0)
        await wait_for(adapter, submitted(estimated=0.3), WaitPlan(mode=Via.POLL, timeout=5, poll_max=10))
        return adapter

    adapter = run(main)
    assert len(adapter.gets) == 1
    assert 0.29 <= adapter.gets[0] < 1.0


@pytest.mark.parametrize(
    ("estimate", "poll_max", "expected"),
    [(None, 10.0, C.POLL_INITIAL), (3.0, 10.0, 3.0), (0.01, 10.0, C.POLL_MIN), (60.0, 10.0, 10.0), (None, 0.5, 0.5)],
)
def test_first_poll_delay_is_the_estimate_clamped(estimate: float | None, poll_max: float, expected: float) -> None:
    """first_poll_delay: the estimate (else POLL_INITIAL), within [POLL_MIN, poll_max]."""
    assert first_poll_delay(submitted(estimated=estimate), WaitPlan(poll_max=poll_max)) == pytest.approx(expected)


def test_polling_backs_off_up_to_poll_max(fast_polls: None) -> None:
    """Intervals grow by the back-off factor and never exceed --poll-max."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0.6)
        await wait_for(adapter, submitted(estimated=0.02), WaitPlan(mode=Via.POLL, timeout=5, poll_max=0.1))
        return adapter

    adapter = run(main)
    gaps = [b - a for a, b in zip([0.0, *adapter.gets], adapter.gets)]
    assert gaps[0] < 0.05, gaps  # started near the estimate
    assert gaps[-1] >= 0.09, gaps  # grew to the ceiling...
    assert max(gaps) <= 0.1 + 0.05, gaps  # ...and no further
    assert 5 <= len(gaps) <= 12, gaps  # a fixed 0.02 s interval would have polled ~30 times


def test_transient_poll_errors_do_not_end_the_wait(fast_polls: None) -> None:
    """A 5xx/429 or a network error while polling is noted and the wait goes on."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        errors: list[Exception] = [TransientError("HTTP 503", status=503), NetworkError("connection reset")]
        adapter = FakeAdapter(done_after=0, errors=errors)
        plan = WaitPlan(mode=Via.POLL, timeout=5, poll_max=0.05)
        return await wait_for(adapter, submitted(estimated=0.01), plan, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == Via.POLL
    assert len(adapter.gets) == 3
    assert notes.text().count("poll failed") == 2


def test_retry_after_of_a_failed_poll_is_honoured(fast_polls: None) -> None:
    """A poll answered 429 with retry_after waits at least that long before the next poll."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0, errors=[TransientError("HTTP 429", status=429, retry_after=0.3)])
        await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=Via.POLL, timeout=5, poll_max=0.05))
        return adapter

    adapter = run(main)
    assert len(adapter.gets) == 2
    assert adapter.gets[1] - adapter.gets[0] >= 0.29


def test_refused_poll_ends_the_wait(fast_polls: None) -> None:
    """A 404 while polling is final: the error is raised, not retried forever."""
    async def main() -> None:
        adapter = FakeAdapter(errors=[RejectedError("HTTP 404", status=404)])
        await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=Via.POLL, timeout=5))

    with pytest.raises(RejectedError):
        run(main)


def test_timeout_detaches_by_default() -> None:
    """The deadline raises WaitTimeoutError and leaves the task running."""
    adapters: list[FakeAdapter] = []

    async def main() -> None:
        adapters.append(FakeAdapter(done_after=100))
        await wait_for(adapters[0], submitted(estimated=0.05), WaitPlan(mode=Via.POLL, timeout=0.3, poll_max=0.05))

    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        run(main)
    assert 0.29 <= time.monotonic() - started < 1.5
    assert info.value.task_id == TASK_ID and not info.value.cancelled
    assert f"g3w wait {TASK_ID}" in (info.value.hint or "")
    assert adapters[0].cancels == []


def test_timeout_with_on_timeout_cancel_cancels_the_task() -> None:
    """--on-timeout cancel: the deadline cancels the task at the provider."""
    adapters: list[FakeAdapter] = []

    async def main() -> None:
        adapters.append(FakeAdapter(done_after=100))
        plan = WaitPlan(mode=Via.POLL, timeout=0.2, poll_max=0.05, on_timeout="cancel")
        await wait_for(adapters[0], submitted(estimated=0.05), plan)

    with pytest.raises(WaitTimeoutError) as info:
        run(main)
    assert info.value.cancelled
    assert adapters[0].cancels == [TASK_ID]


def test_timeout_cuts_a_hanging_poll_short() -> None:
    """--timeout bounds the whole wait, even while a poll request is stuck (long Retry-After)."""
    async def main() -> None:
        adapter = FakeAdapter(hang=True)
        await wait_for(adapter, submitted(estimated=0.05), WaitPlan(mode=Via.POLL, timeout=0.3))

    started = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        run(main)
    assert time.monotonic() - started < 1.0


def test_unconfirmable_callback_falls_back_to_polling() -> None:
    """When the confirming GET fails transiently, the wait goes on by polling instead of failing."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=0, errors=[TransientError("HTTP 429", status=429)]), Inbox()
        later(0.02, lambda: inbox.put(delivery(Status.COMPLETED, verified=False)))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=60, poll_max=0.2)
        return await wait_for(adapter, submitted(estimated=0.05), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == Via.POLL
    assert len(adapter.gets) == 2
    assert outcome.elapsed < 1
    assert "could not confirm a callback" in notes.text()


@pytest.mark.parametrize(("on_timeout", "cancels"), [("detach", []), ("cancel", [TASK_ID])])
def test_interrupting_the_wait_cancels_the_task_only_when_asked(on_timeout: str, cancels: list[str]) -> None:
    """Ctrl-C (task cancellation) cancels at the provider only with --on-timeout cancel."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=100)
        plan = WaitPlan(mode=Via.POLL, timeout=5, poll_max=0.05, on_timeout=on_timeout)
        waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=0.05), plan))
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return adapter

    assert run(main).cancels == cancels


def test_already_final_task_returns_at_once() -> None:
    """A sync answer that is already final is returned as is, with the given via."""
    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter = FakeAdapter()
        final = Task(id=TASK_ID, provider="get3w", api="v1", model="m", status=Status.COMPLETED, outputs=("u",))
        return await wait_for(adapter, final, WaitPlan(mode=Via.POLL), via_if_done=Via.SYNC), adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.SYNC and outcome.elapsed == 0.0 and adapter.gets == []


def test_failed_task_is_returned_not_raised(fast_polls: None) -> None:
    """A failed task is an outcome (the CLI decides the exit code), not an exception."""
    async def main() -> Outcome:
        adapter = FakeAdapter(done_after=0, final=Status.FAILED)
        return await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=Via.POLL, timeout=5))

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
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers or {}) as resp:
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

    adapter, posts, listener = run(main)
    assert posts >= 50 and listener.stats.accepted == posts  # every one reached the waiter as a hint
    # The interval starts at 0.4 s and grows x1.5 after each GET: 0 s, 0.4 s, then past the 1 s deadline.
    assert 1 <= len(adapter.gets) <= 3, adapter.gets


def test_a_genuine_hint_inside_the_interval_is_confirmed_at_the_intervals_end() -> None:
    """After a forged hint's GET, the real (unsigned) callback is not ignored: the next GET confirms it."""
    async def main() -> tuple[Outcome, Watched]:
        adapter, inbox = Watched(done_after=100), Inbox()
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=5, fallback_after=60, poll_max=10)
        waiter = asyncio.ensure_future(wait_for(adapter, submitted(estimated=0.3), plan, inbox=inbox))
        inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",)))
        await adapter.got.get()  # the forged hint was checked: still running
        adapter.done_after = 0  # now the task really ends, and its unsigned callback comes in
        inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/y",)))
        return await waiter, adapter

    outcome, adapter = run(main)
    assert outcome.via == Via.WEBHOOK and outcome.task.outputs == (REAL_OUTPUT,)
    assert len(adapter.gets) == 2
    assert outcome.elapsed < 3  # within an interval (0.45 s here), far from the 60 s fallback


def test_a_callback_verified_by_another_providers_secret_is_only_a_hint() -> None:
    """A delivery signed with the Abstrakt secret does not prove a Get3W task's end: a GET is asked."""
    notes = Notes()

    async def main() -> FakeAdapter:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        async with CallbackListener(inbox, secrets={"get3w": SECRET, "abstrakt": "abstrakt-secret"}) as listener:
            body = completed_body(["https://evil/x"])
            stamp = str(int(time.time()))
            headers = {"X-Abstrakt-Timestamp": stamp, "X-Abstrakt-Signature": sign_abstrakt("abstrakt-secret", body, stamp)}
            assert await post(listener.local_url, body, headers) == 200  # verified, by Abstrakt's secret
            plan = WaitPlan(mode=Via.WEBHOOK, timeout=0.5, fallback_after=60)
            with pytest.raises(WaitTimeoutError):
                await wait_for(adapter, submitted(), plan, inbox=inbox, notify=notes)
        return adapter

    adapter = run(main)
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
        outcome, adapter = run(main)
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

    vias, adapter = run(main)
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


def test_the_waiter_says_once_per_word_that_it_did_not_know_it(fast_polls: None) -> None:
    """Unknown words keep the wait going; each distinct word is said once."""
    notes = Notes()

    async def main() -> Outcome:
        adapter = Words(["warming_up", "warming_up", "rendering", "warming_up"])
        return await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=Via.POLL, timeout=5, poll_max=0.02),
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
        plan = WaitPlan(mode=Via.POLL, timeout=0.3, poll_max=10, on_timeout="cancel")
        return await wait_for(adapters[0], submitted(estimated=10), plan, notify=notes)

    outcome = run(main)
    assert (outcome.task.status, outcome.via) == (Status.COMPLETED, Via.POLL)
    assert adapters[0].cancels == []
    assert len(adapters[0].gets) == 1  # the look
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

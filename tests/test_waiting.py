"""The waiting engine: callbacks raced against adaptive polling, with a deadline (pure asyncio)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest

from get3w_cli import constants as C
from get3w_cli.errors import NetworkError, RejectedError, TransientError, WaitTimeoutError
from get3w_cli.records import Status, Task
from get3w_cli.waiting import POLL, SYNC, WEBHOOK, Outcome, WaitPlan, first_poll_delay, wait_for
from get3w_cli.webhooks.inbox import Delivery, Inbox

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
        plan = WaitPlan(mode=WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == WEBHOOK
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
        plan = WaitPlan(mode=WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox), adapter

    outcome, adapter = run(main)
    assert outcome.via == WEBHOOK
    assert len(adapter.gets) == 1
    assert outcome.task.outputs == (REAL_OUTPUT,)


def test_forged_unsigned_completion_while_running_is_ignored() -> None:
    """A forged 'completed' for a running task is dropped and does not mask the genuine callback."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        later(0.02, lambda: inbox.put(delivery(Status.COMPLETED, verified=False, outputs=("https://evil/x",))))
        later(0.15, lambda: inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/ok.png",))))
        plan = WaitPlan(mode=WEBHOOK, timeout=5, fallback_after=5)
        return await wait_for(adapter, submitted(), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == WEBHOOK
    assert outcome.task.outputs == ("https://cb/ok.png",)
    assert outcome.elapsed >= 0.14
    assert len(adapter.gets) == 1
    assert "ignored an unconfirmed callback" in notes.text()


def test_no_callback_falls_back_to_polling_after_fallback_after() -> None:
    """Without a callback, polling starts after fallback_after, with a note saying so."""
    notes = Notes()

    async def main() -> tuple[Outcome, FakeAdapter]:
        adapter = FakeAdapter(done_after=0)
        plan = WaitPlan(mode=WEBHOOK, timeout=5, fallback_after=0.2)
        return await wait_for(adapter, submitted(), plan, inbox=Inbox(), notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.via == POLL
    assert outcome.task.status is Status.COMPLETED
    assert len(adapter.gets) == 1 and 0.19 <= adapter.gets[0] < 1.0
    assert "no callback within 0.2s; polling" in notes.text()
    assert ("phase", "polling") in notes.items


def test_default_fallback_is_at_least_a_minute_or_twice_the_estimate() -> None:
    """--fallback-after defaults to max(60s, 2 x estimated_duration)."""
    plan = WaitPlan(mode=WEBHOOK)
    assert plan.fallback_for(submitted()) == C.FALLBACK_MIN
    assert plan.fallback_for(submitted(estimated=100)) == 200
    assert WaitPlan(fallback_after=3).fallback_for(submitted(estimated=100)) == 3


def test_first_poll_waits_for_the_estimated_duration() -> None:
    """The first poll comes near the provider's estimate, not at once."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0)
        await wait_for(adapter, submitted(estimated=0.3), WaitPlan(mode=POLL, timeout=5, poll_max=10))
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
        await wait_for(adapter, submitted(estimated=0.02), WaitPlan(mode=POLL, timeout=5, poll_max=0.1))
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
        plan = WaitPlan(mode=POLL, timeout=5, poll_max=0.05)
        return await wait_for(adapter, submitted(estimated=0.01), plan, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == POLL
    assert len(adapter.gets) == 3
    assert notes.text().count("poll failed") == 2


def test_retry_after_of_a_failed_poll_is_honoured(fast_polls: None) -> None:
    """A poll answered 429 with retry_after waits at least that long before the next poll."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=0, errors=[TransientError("HTTP 429", status=429, retry_after=0.3)])
        await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=POLL, timeout=5, poll_max=0.05))
        return adapter

    adapter = run(main)
    assert len(adapter.gets) == 2
    assert adapter.gets[1] - adapter.gets[0] >= 0.29


def test_refused_poll_ends_the_wait(fast_polls: None) -> None:
    """A 404 while polling is final: the error is raised, not retried forever."""
    async def main() -> None:
        adapter = FakeAdapter(errors=[RejectedError("HTTP 404", status=404)])
        await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=POLL, timeout=5))

    with pytest.raises(RejectedError):
        run(main)


def test_timeout_detaches_by_default() -> None:
    """The deadline raises WaitTimeoutError and leaves the task running."""
    adapters: list[FakeAdapter] = []

    async def main() -> None:
        adapters.append(FakeAdapter(done_after=100))
        await wait_for(adapters[0], submitted(estimated=0.05), WaitPlan(mode=POLL, timeout=0.3, poll_max=0.05))

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
        plan = WaitPlan(mode=POLL, timeout=0.2, poll_max=0.05, on_timeout="cancel")
        await wait_for(adapters[0], submitted(estimated=0.05), plan)

    with pytest.raises(WaitTimeoutError) as info:
        run(main)
    assert info.value.cancelled
    assert adapters[0].cancels == [TASK_ID]


def test_timeout_cuts_a_hanging_poll_short() -> None:
    """--timeout bounds the whole wait, even while a poll request is stuck (long Retry-After)."""
    async def main() -> None:
        adapter = FakeAdapter(hang=True)
        await wait_for(adapter, submitted(estimated=0.05), WaitPlan(mode=POLL, timeout=0.3))

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
        plan = WaitPlan(mode=WEBHOOK, timeout=5, fallback_after=60, poll_max=0.2)
        return await wait_for(adapter, submitted(estimated=0.05), plan, inbox=inbox, notify=notes), adapter

    outcome, adapter = run(main)
    assert outcome.task.status is Status.COMPLETED and outcome.via == POLL
    assert len(adapter.gets) == 2
    assert outcome.elapsed < 1
    assert "could not confirm a callback" in notes.text()


@pytest.mark.parametrize(("on_timeout", "cancels"), [("detach", []), ("cancel", [TASK_ID])])
def test_interrupting_the_wait_cancels_the_task_only_when_asked(on_timeout: str, cancels: list[str]) -> None:
    """Ctrl-C (task cancellation) cancels at the provider only with --on-timeout cancel."""
    async def main() -> FakeAdapter:
        adapter = FakeAdapter(done_after=100)
        plan = WaitPlan(mode=POLL, timeout=5, poll_max=0.05, on_timeout=on_timeout)
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
        return await wait_for(adapter, final, WaitPlan(mode=POLL), via_if_done=SYNC), adapter

    outcome, adapter = run(main)
    assert outcome.via == SYNC and outcome.elapsed == 0.0 and adapter.gets == []


def test_failed_task_is_returned_not_raised(fast_polls: None) -> None:
    """A failed task is an outcome (the CLI decides the exit code), not an exception."""
    async def main() -> Outcome:
        adapter = FakeAdapter(done_after=0, final=Status.FAILED)
        return await wait_for(adapter, submitted(estimated=0.01), WaitPlan(mode=POLL, timeout=5))

    assert run(main).task.status is Status.FAILED

"""``within``: a bounded await that never loses the caller's cancellation (unlike wait_for < 3.12)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from get3w_cli.timeouts import within


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())


def test_a_cancellation_in_the_same_turn_as_the_result_is_not_lost() -> None:
    """The work finishes in the very turn its caller is cancelled: the caller still sees the
    cancellation (asyncio.wait_for before 3.12 returns the result and drops it: a stopped batch
    worker then waited forever)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        release, started = loop.create_future(), asyncio.Event()

        async def work() -> int:
            started.set()
            await release
            return 1

        caller = asyncio.ensure_future(within(work(), 10))
        await started.wait()
        release.set_result(None)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller

    run(main)


def test_the_result_comes_back_within_the_time() -> None:
    async def main() -> int:
        async def work() -> int:
            return 7

        return await within(work(), 5)

    assert run(main) == 7


def test_past_the_time_the_work_is_cancelled_and_timeout_raised() -> None:
    """The work is cancelled (its clean-up runs) and the caller gets asyncio.TimeoutError."""
    cleaned: list[bool] = []

    async def main() -> None:
        async def work() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(True)

        with pytest.raises(asyncio.TimeoutError):
            await within(work(), 0.01)

    run(main)
    assert cleaned == [True]


def test_no_limit_awaits_as_is() -> None:
    async def main() -> str:
        async def work() -> str:
            return "done"

        return await within(work(), None)

    assert run(main) == "done"

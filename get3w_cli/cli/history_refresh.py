"""``g3w history --refresh``: ask the providers about every unfinished task in the journal.

Every row still ``created`` or ``processing`` with an id gets one GET (retried by the HTTP layer
on 429 with ``Retry-After``, like any GET), HISTORY_REFRESH_CONCURRENCY at a time, and its new
status and record are journalled. Rows with no id (``submitting``, ``unknown``) cannot be asked
about and are left alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from get3w_cli.constants import HISTORY_REFRESH_CONCURRENCY
from get3w_cli.errors import G3wError
from get3w_cli.records import Status, Task

if TYPE_CHECKING:
    from get3w_cli.cli.context import Access, Context, Services
    from get3w_cli.journal import JournalEntry
    from get3w_cli.providers import Adapter

UNFINISHED = (Status.CREATED.value, Status.PROCESSING.value)
Outcome = tuple["JournalEntry", "Task | G3wError"]


async def fetch_all(entries: Sequence[JournalEntry], fetch: Callable[[JournalEntry], Awaitable[Task]], *,
                    concurrency: int = HISTORY_REFRESH_CONCURRENCY) -> list[Outcome]:
    """Each entry with its fetched task, or the error that stopped the fetch; ``concurrency`` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(entry: JournalEntry) -> Outcome:
        async with gate:
            try:
                return entry, await fetch(entry)
            except G3wError as exc:
                return entry, exc

    return list(await asyncio.gather(*(one(entry) for entry in entries)))


async def refresh(ctx: Context, access: Access) -> tuple[list[JournalEntry], list[tuple[JournalEntry, G3wError]]]:
    """Refresh every unfinished row: (the rows as now journalled, the rows that could not be).

    Raises:
        ConfigError: a provider of these rows has no API key (checked before any request).
    """
    from get3w_cli.cli.context import open_services

    async with open_services(ctx, access) as services:
        journal = services.journal
        entries = [e for e in journal.tasks(limit=-1, statuses=UNFINISHED) if e.id]
        adapters = {_where(services, e): _adapter(services, e) for e in entries}  # every key checked first

        async def fetch(entry: JournalEntry) -> Task:
            assert entry.id is not None
            return await adapters[_where(services, entry)].get(entry.id)

        refreshed, failed = [], []
        for entry, outcome in await fetch_all(entries, fetch):
            if isinstance(outcome, G3wError):
                failed.append((entry, outcome))
                continue
            task = outcome if outcome.model else dataclasses.replace(outcome, model=entry.model)
            journal.task_updated(task.id, task.status.value, task.record(input=entry.input, via=_via(task)))
            refreshed.append(journal.find(task.id) or entry)
        return refreshed, failed


def _via(task: Task) -> str | None:
    return "poll" if task.status.terminal else None  # learnt by asking: the contract's "poll"


def _where(services: Services, entry: JournalEntry) -> tuple[str, str, str | None]:
    """Where a row's task is asked about: its recorded base URL (the sandbox's, with --sandbox)."""
    return entry.provider, entry.api, None if services.sandbox else entry.base_url


def _adapter(services: Services, entry: JournalEntry) -> Adapter:
    from get3w_cli.providers import make_adapter

    provider, api, base_url = _where(services, entry)
    return make_adapter((provider, api), services.client(provider, api, base_url=base_url))

"""What the one-task core works with: the services it needs, how it reports, what it is asked
to do, and the choice of how to wait (the one home of that decision: run, wait and batch use it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from get3w_cli.constants import HTTP_SYNC_REQUEST_DEADLINE
from get3w_cli.errors import UsageError, WebhookSetupError
from get3w_cli.names import Via

if TYPE_CHECKING:
    from get3w_cli.callbacks import ChannelOptions
    from get3w_cli.callbacks.channel import Channel
    from get3w_cli.http import HttpSession
    from get3w_cli.journal import Journal
    from get3w_cli.models_cache import ModelsCache
    from get3w_cli.providers import Adapter, Route
    from get3w_cli.waiting import WaitPlan

# (kind, text): "phase", "note" or "warn"; also what only a terminal's spinner shows: "status" (the
# provider's word for the task now), "progress" (a stream's percentage, e.g. "42%"), "retry".
Notify = Callable[[str, str], None]


class Connections(Protocol):
    """What the core needs from the command around it (the CLI's ``Services``)."""

    @property
    def journal(self) -> Journal: ...

    @property
    def session(self) -> HttpSession: ...

    @property
    def models_cache(self) -> ModelsCache | None: ...

    def adapter(self, route: Route, *, post_headers: Mapping[str, str] | None = None) -> Adapter: ...

    def base_url(self, provider: str) -> str: ...

    def webhook_secret(self, provider: str) -> str | None: ...


class Observer(Protocol):
    """How the core reports: ``notify`` for phases/notes/warnings, ``record`` for the task record."""

    def notify(self, kind: str, text: str) -> None: ...

    def record(self, record: dict[str, Any]) -> None: ...

    def download_progress(self, name: str) -> Callable[[int, int | None], None]: ...


@dataclass(frozen=True)
class WaitRequest:
    """The wait options of run / wait / batch, before ``auto`` is decided."""

    via: str
    plan: WaitPlan
    channel: ChannelOptions
    output_dir: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task to submit: where it goes and what it sends (``-i KEY=@FILE`` uploads pending).

    ``idempotency_key``: a run again with the same key reuses the task journalled with it
    (``tasks.idempotency``); ``resubmit_unknown``: unless that task's submit got no answer.
    """

    route: Route
    input: Mapping[str, Any]
    uploads: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    idempotency_key: str | None = None
    resubmit_unknown: bool = False


def choose_mode(via: str, channel: ChannelOptions, notify: Notify, *, timeout: float,
                adapter: Adapter | None = None) -> Via:
    """Turn ``--via`` into webhook, poll, sync or stream (the one home of this decision; run, wait
    and batch use it). ``adapter``: the one API of the task (batch decides sync per line).

    Raises:
        UsageError: ``stream`` for an API that cannot stream, or for a batch.
    """
    if via == Via.STREAM:
        from get3w_cli.providers import StreamSubmitter

        if adapter is None or not isinstance(adapter, StreamSubmitter):
            where = "a batch" if adapter is None else f"{adapter.provider} {adapter.api}"
            raise UsageError(f"--via stream is for one Get3W v3 task, not {where}; nothing was sent",
                             hint="use --via poll or --via webhook")
        return Via.STREAM
    if via == Via.SYNC and adapter is not None and not adapter.has_sync:
        notify("note", f"{adapter.provider} {adapter.api} has no sync mode; polling instead")
        return Via.POLL
    if via == Via.SYNC and timeout < HTTP_SYNC_REQUEST_DEADLINE:
        # A sync request cannot be cut short at --timeout without losing the task id (exit 4
        # must print it), and the provider may hold it this long: poll, which --timeout bounds.
        notify("note", f"--timeout {timeout:g}s is shorter than a sync request may take; polling instead")
        return Via.POLL
    if via == Via.AUTO:
        from get3w_cli.callbacks import webhook_possible

        return Via.WEBHOOK if webhook_possible(channel) else Via.POLL
    return Via(via)


async def open_channel_for(stack: AsyncExitStack, mode: str, request: WaitRequest,
                           notify: Callable[[str, str], None]) -> Channel | None:
    """Open the callback channel for webhook mode; under ``auto`` a failure means polling."""
    if mode != Via.WEBHOOK:
        return None
    from get3w_cli.callbacks.channel import open_channel, setup_failed_message  # the server only when used

    try:
        return await stack.enter_async_context(open_channel(request.channel, notify=notify))
    except WebhookSetupError as exc:
        if request.via == Via.WEBHOOK:
            raise
        notify("warn", setup_failed_message(exc) + (f" ({exc.hint})" if exc.hint else ""))
        return None

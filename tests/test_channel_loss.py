"""A way in that drops during a wait (a tunnel, the relay) is noticed: said once, and polling starts at once.

The waiting engine's part runs in virtual time (exact instants); the channel's part on a real
loop with a real relay (the borrower's connection ends) and with tunnel-like objects whose
``dropped`` is an asyncio Event or Future, as the ngrok tunnel and cloudflared expose it.
"""

from __future__ import annotations

import asyncio
import os

from test_waiting import FakeAdapter, Notes, at, later, run, submitted

from get3w_cli.callbacks import ChannelOptions
from get3w_cli.callbacks.channel import open_channel
from get3w_cli.callbacks.reach import reason_future
from get3w_cli.names import Via
from get3w_cli.records import Status
from get3w_cli.waiting import WaitPlan, wait_for
from get3w_cli.webhooks.inbox import Inbox
from get3w_cli.webhooks.relay import RelayServer
from get3w_cli.webhooks.relay_state import RelayInfo, relay_lock, write_info


def test_a_lost_channel_makes_the_waiter_poll_at_once() -> None:
    """No callback can come any more: the GET is at the loss's instant, not at the 60 s fallback."""
    async def main() -> tuple[object, FakeAdapter, Notes]:
        adapter, inbox, notes = FakeAdapter(done_after=7), Inbox(), Notes()
        later(5, lambda: inbox.channel_lost("the relay went away"))
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60, poll_max=10)
        return await wait_for(adapter, submitted(estimated=2), plan, inbox=inbox, notify=notes), adapter, notes

    outcome, adapter, notes = run(main)
    assert adapter.gets == at(5, 7)  # at once, then the poll interval (the estimate, 2 s)
    assert getattr(outcome, "via", None) == Via.POLL
    assert ("phase", "polling") in notes.items and "no callback within" not in notes.text()


def test_a_channel_lost_before_the_wait_begins_is_polled_from_the_start() -> None:
    async def main() -> FakeAdapter:
        adapter, inbox = FakeAdapter(done_after=0), Inbox()
        inbox.channel_lost("the ngrok agent's session closed")
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60)
        await wait_for(adapter, submitted(), plan, inbox=inbox)
        return adapter

    assert run(main).gets == at(0)


def test_the_loss_signal_is_shared_and_keeps_the_first_reason() -> None:
    async def main() -> None:
        inbox = Inbox()
        signal = inbox.loss_signal()
        assert not signal.done() and inbox.loss_signal() is signal
        inbox.channel_lost("first")
        inbox.channel_lost("second")
        assert signal.done() and inbox.lost == "first"

    asyncio.run(main())


def test_the_ngrok_tunnels_dropped_event_becomes_its_reason() -> None:
    """The ngrok tunnel's ``dropped`` (an asyncio Event, its reason read when set) resolves the
    channel's reason; nothing resolves before the event is set."""
    async def main() -> tuple[bool, str]:
        event = asyncio.Event()
        said: list[str] = []
        out = reason_future(event, lambda: said[0])
        await asyncio.sleep(0)
        early = out.done()
        said.append("session closed: reconnecting")
        event.set()
        return early, await asyncio.wait_for(out, 5)

    assert asyncio.run(main()) == (False, "session closed: reconnecting")


def test_the_channel_says_once_when_its_relay_goes_and_tells_the_inbox() -> None:
    """A run borrowing the relay: the relay closes; the channel warns once, and the inbox is told why."""
    home = os.environ["G3W_HOME"]

    async def main() -> tuple[list[tuple[str, str]], str | None, str]:
        from pathlib import Path

        server = RelayServer(secret="s" * 43)
        await server.start()
        info = RelayInfo(pid=os.getpid(), local_url=server.local_url, public_url=server.local_url,
                         control_port=server.control_port, tunnel="local", started_at="now", secret="s" * 43)
        notes: list[tuple[str, str]] = []
        with relay_lock(Path(home)):
            write_info(Path(home), info)
            options = ChannelOptions(relay_dir=home, provider_urls=("http://127.0.0.1:9",))
            async with open_channel(options, notify=lambda kind, text: notes.append((kind, text))) as channel:
                await server.close("the relay stopped")
                signal = channel.inbox.loss_signal()
                await asyncio.wait_for(signal, 5)  # the warning comes first, then the inbox is told
                return notes, channel.inbox.lost, channel.how

    notes, lost, how = asyncio.run(main())
    assert how == "relay" and lost == "the relay stopped"
    warnings = [text for kind, text in notes if kind == "warn"]
    assert warnings == ["lost the relay: the relay stopped; polling for results"]


def test_a_completed_status_is_not_lost_with_the_channel() -> None:
    """A trusted callback already queued still ends the wait by webhook, loss or not."""
    from test_waiting import delivery

    async def main() -> object:
        adapter, inbox = FakeAdapter(done_after=100), Inbox()
        inbox.put(delivery(Status.COMPLETED, verified=True, outputs=("https://cb/x.png",)))
        inbox.channel_lost("gone")
        plan = WaitPlan(mode=Via.WEBHOOK, timeout=600, fallback_after=60)
        return await wait_for(adapter, submitted(), plan, inbox=inbox)

    assert getattr(run(main), "via", None) == Via.WEBHOOK

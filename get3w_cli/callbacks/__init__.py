"""How providers' callbacks reach this process: the channel of run and batch, and the relay.

    choices.py        ChannelOptions; what ``--tunnel auto`` would try, decided without opening
                      anything (``webhook_possible``, ``usable_relay``, ``tunnel_choices``)
    reach.py          make a local server reachable: --public-url, a tunnel (checked end to end), local
    channel.py        open_channel(): our token and inbox, through the relay or our own listener;
                      a way that drops is noticed and the waiters poll
    relay_service.py  serve_relay(): the relay's server, its tunnel and relay.json (``g3w relay``)
"""

from __future__ import annotations

from get3w_cli.callbacks.choices import ChannelOptions, is_local_url, webhook_possible

__all__ = ["ChannelOptions", "is_local_url", "webhook_possible"]

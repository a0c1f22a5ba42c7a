"""The relay and cloudflared rows of ``g3w doctor`` (the ngrok rows are doctor_cmd's own).

Sends nothing off this machine: the relay is asked over its control port on 127.0.0.1, and
cloudflared only for its version.
"""

from __future__ import annotations

import os

from get3w_cli.cli.context import Context

Row = tuple[str, bool, str, str | None]  # as doctor_cmd's: check, ok, detail, source


def tunnel_rows(ctx: Context) -> list[Row]:
    """One row for the relay (running or not: both are fine), one for cloudflared."""
    from get3w_cli.webhooks.cloudflared import cloudflared_version, find_cloudflared
    from get3w_cli.webhooks.relay_state import describe

    relay = describe(ctx.state_dir())
    if relay["alive"]:
        relay_row = (f"running (pid {relay['pid']}): {relay['public_url']} via {relay['tunnel']}, "
                     f"{relay['clients']} borrower(s); runs borrow it unless --no-relay")
    else:
        why = f" ({relay['error']})" if relay.get("error") else ""
        relay_row = f"not running{why} (optional: `g3w relay --detach` shares one tunnel between parallel runs)"
    rows: list[Row] = [("relay", "error" not in relay, relay_row, None)]
    source = "env CLOUDFLARED_PATH" if ctx.cloudflared_path() else None
    path = find_cloudflared(ctx.cloudflared_path())
    if path is None or not os.path.isfile(path):
        where = f" at {path}" if path else ""
        missing = (f"not found{where} (optional: --tunnel cloudflared needs it on PATH or CLOUDFLARED_PATH; g3w does "
                   "not download it)")
        rows.append(("cloudflared", False, missing, source))
    else:
        version = cloudflared_version(path)
        runs = not version.startswith(("does not run", "no version"))
        rows.append(("cloudflared", runs, f"{path}: {version}", source))
    return rows

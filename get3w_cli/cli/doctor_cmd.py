"""``g3w doctor``: check the local set-up (config, keys, journal, ngrok) without sending anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.options import TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.config import mask
from get3w_cli.errors import G3wError, TunnelError
from get3w_cli.names import PROVIDERS

if TYPE_CHECKING:
    from get3w_cli.config import Settings


def _checks(ctx: Context) -> list[tuple[str, bool, str]]:
    rows: list[tuple[str, bool, str]] = []
    path = ctx.config_path()
    try:
        settings = ctx.settings()
        rows.append(("config file", True, f"{path}" + ("" if path.exists() else " (not created yet)")))
    except G3wError as exc:
        return [("config file", False, exc.message)]
    for name in PROVIDERS:
        ps = settings.for_provider(name)
        rows.append((f"{name} key", bool(ps.api_key), mask(ps.api_key) or "not set"))
        rows.append((f"{name} base URL", True, ps.base_url))
    try:
        journal = ctx.journal()
        rows.append(("journal", True, str(journal.path)))
        journal.close()
    except G3wError as exc:
        rows.append(("journal", False, exc.message))
    return rows + _ngrok_rows(ctx, settings)


def _ngrok_rows(ctx: Context, settings: Settings) -> list[tuple[str, bool, str]]:
    """ngrok as a tunnel would find it: the authtoken, pyngrok, and the agent that would run (never
    pyngrok's console script), or where pyngrok would install it; its version, and whether the
    installed pyngrok drives it. Nothing is installed, started or sent."""
    from get3w_cli.constants import PYNGROK_MAJORS
    from get3w_cli.webhooks.ngrok_agent import check_drivable, find_agent, pyngrok_version

    rows = [("ngrok authtoken", bool(settings.ngrok_authtoken), "set" if settings.ngrok_authtoken else "not set")]
    pyngrok = pyngrok_version()
    supported = pyngrok is not None and int(pyngrok.split(".")[0]) in PYNGROK_MAJORS
    majors = ", ".join(f"{major}.x" for major in PYNGROK_MAJORS)
    needs = "" if supported else f" (g3w needs {majors})"
    rows.append(("pyngrok", supported, f"{pyngrok or 'not installed'}{needs}"))
    search = ctx.ngrok_search(settings)
    target = search.install_to or ""
    try:
        lookup = find_agent(search, target)
    except TunnelError as exc:
        return [*rows, ("ngrok agent", False, exc.message)]
    passed = f"; passed over {', '.join(lookup.skipped)}" if lookup.skipped else ""
    agent = lookup.agent
    if agent is None and search.install:
        detail = f"not installed: pyngrok would install it to {target} when a tunnel is first opened{passed}"
        return [*rows, ("ngrok agent", True, detail)]
    if agent is None:
        detail = f"not on PATH nor at {target}, and installing it is off (G3W_NGROK_INSTALL / ngrok.install){passed}"
        return [*rows, ("ngrok agent", False, detail)]
    try:
        check_drivable(agent, pyngrok)
        ok, how = True, f"pyngrok {pyngrok} drives it through {agent.api}"
    except TunnelError as exc:
        ok, how = False, exc.message
    return [*rows, ("ngrok agent", ok, f"{agent.version_text} at {agent.path} (from {agent.found}); {how}{passed}")]


@app.command("doctor")
@options(hide=("quiet",))
def doctor_cmd(*, talk: TalkFlags) -> None:
    """Check config, keys, journal and ngrok; exit 3 when no provider key is set."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        rows = _checks(Context())
        if ui.json_mode:
            ui.json([{"check": c, "ok": ok, "detail": d} for c, ok, d in rows])
        else:
            ui.table(("check", "ok", "detail"), [(c, "yes" if ok else "no", d) for c, ok, d in rows])
        has_key = any(ok for c, ok, _ in rows if c.endswith(" key"))
        config_ok = all(ok for c, ok, _ in rows if c in ("config file", "journal"))
        return 0 if has_key and config_ok else 3

    run(ui, body)

"""``g3w doctor``: check the local set-up (config, keys, journal, ngrok, relay, cloudflared), saying
where each setting came from (flag, env, file, default); with ``--online``, try each key with one
cheap request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.doctor_tunnels import tunnel_rows
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.config import mask
from get3w_cli.errors import ExitCode, G3wError, TunnelError
from get3w_cli.names import FACTS, PROVIDERS

Row = tuple[str, bool, str, str | None]  # check, ok, detail, where the setting came from

if TYPE_CHECKING:
    from get3w_cli.config import Settings


class DoctorFlags(FlagGroup):
    """``g3w doctor``'s own options."""

    online: Annotated[bool, typer.Option(
        "--online", help="Also try each key set with one cheap request (Get3W: the balance; Abstrakt: "
                         "one model).")] = False


def _checks(ctx: Context) -> tuple[list[Row], Settings | None]:
    rows: list[Row] = []
    path = ctx.config_path()
    config_from = "env G3W_CONFIG" if ctx.env.get("G3W_CONFIG") else "default"
    try:
        settings = ctx.settings()
        rows.append(("config file", True, f"{path}" + ("" if path.exists() else " (not created yet)"), config_from))
    except G3wError as exc:
        return [("config file", False, exc.message, config_from)], None
    source = settings.sources.get
    for name in PROVIDERS:
        ps = settings.for_provider(name)
        rows.append((f"{name} key", bool(ps.api_key), mask(ps.api_key) or "not set", source(f"{name}.api_key")))
        rows.append((f"{name} base URL", True, ps.base_url, source(f"{name}.base_url")))
    try:
        journal = ctx.journal()
        rows.append(("journal", True, str(journal.path), "env G3W_HOME" if ctx.env.get("G3W_HOME") else "default"))
        journal.close()
    except G3wError as exc:
        rows.append(("journal", False, exc.message, None))
    return rows + _ngrok_rows(ctx, settings) + tunnel_rows(ctx), settings


def _ngrok_rows(ctx: Context, settings: Settings) -> list[Row]:
    """ngrok as a tunnel would find it: the authtoken, pyngrok, and the agent that would run (never
    pyngrok's console script), or where pyngrok would install it; its version, and whether the
    installed pyngrok drives it. Nothing is installed, started or sent."""
    from get3w_cli.constants import PYNGROK_MAJORS
    from get3w_cli.webhooks.ngrok_agent import check_drivable, find_agent, pyngrok_version

    rows: list[Row] = [("ngrok authtoken", bool(settings.ngrok_authtoken),
                        "set" if settings.ngrok_authtoken else "not set", settings.sources.get("ngrok.authtoken"))]
    pyngrok = pyngrok_version()
    supported = pyngrok is not None and int(pyngrok.split(".")[0]) in PYNGROK_MAJORS
    majors = ", ".join(f"{major}.x" for major in PYNGROK_MAJORS)
    needs = "" if supported else f" (g3w needs {majors})"
    rows.append(("pyngrok", supported, f"{pyngrok or 'not installed'}{needs}", None))
    search = ctx.ngrok_search(settings)
    target = search.install_to or ""
    try:
        lookup = find_agent(search, target)
    except TunnelError as exc:
        return [*rows, ("ngrok agent", False, exc.message, _agent_source(ctx))]
    passed = f"; passed over {', '.join(lookup.skipped)}" if lookup.skipped else ""
    agent = lookup.agent
    if agent is None and search.install:
        detail = f"not installed: pyngrok would install it to {target} when a tunnel is first opened{passed}"
        return [*rows, ("ngrok agent", True, detail, settings.sources.get("ngrok.install"))]
    if agent is None:
        detail = f"not on PATH nor at {target}, and installing it is off (G3W_NGROK_INSTALL / ngrok.install){passed}"
        return [*rows, ("ngrok agent", False, detail, settings.sources.get("ngrok.install"))]
    try:
        check_drivable(agent, pyngrok)
        ok, how = True, f"pyngrok {pyngrok} drives it through {agent.api}"
    except TunnelError as exc:
        ok, how = False, exc.message
    return [*rows, ("ngrok agent", ok, f"{agent.version_text} at {agent.path} (from {agent.found}); {how}{passed}",
                    _agent_source(ctx))]


def _agent_source(ctx: Context) -> str | None:
    return "env NGROK_PATH" if ctx.env.get("NGROK_PATH") else None


async def _online(ctx: Context, settings: Settings) -> tuple[list[Row], list[G3wError]]:
    """One authenticated request per provider whose key is set: does the provider take it?"""
    from get3w_cli.cli import resolve
    from get3w_cli.cli.context import open_services
    from get3w_cli.cli.options import AccountFlags
    from get3w_cli.providers import KeyCheck, Route

    rows: list[Row] = []
    failures: list[G3wError] = []
    async with open_services(ctx, resolve.access(ctx, AccountFlags())) as services:
        for name in PROVIDERS:
            if not settings.for_provider(name).api_key:
                continue
            adapter = services.adapter(Route(name, FACTS[name].apis[-1], ""))
            if not isinstance(adapter, KeyCheck):
                continue
            try:
                rows.append((f"{name} key online", True, await adapter.check_key(), None))
            except G3wError as exc:
                failures.append(exc)
                rows.append((f"{name} key online", False, exc.message + (f" ({exc.hint})" if exc.hint else ""), None))
    return rows, failures


def _show(ui: Ui, rows: list[Row]) -> None:
    if ui.json_mode:
        ui.json([{"check": c, "ok": ok, "detail": d, "source": s} for c, ok, d, s in rows])
    else:
        ui.table(("check", "ok", "detail", "from"), [(c, "yes" if ok else "no", d, s or "") for c, ok, d, s in rows])


@app.command("doctor", epilog=examples(
    ("check the set-up; sends nothing", "g3w doctor"),
    ("also try each key with one request", "g3w doctor --online"),
    ("the checks as one JSON array", "g3w doctor --json"),
))
@options(hide=("quiet",), help_overrides={"json_out": "Print the checks as one JSON array of objects."})
def doctor_cmd(*, doctor: DoctorFlags, talk: TalkFlags) -> None:
    """Check config, keys, journal, ngrok, relay and cloudflared; exit 3 when no key is set."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        ctx = Context()
        rows, settings = _checks(ctx)
        failures: list[G3wError] = []
        if doctor.online and settings is not None:
            online, failures = await _online(ctx, settings)
            rows += online
        _show(ui, rows)
        has_key = any(ok for c, ok, _, _ in rows if c.endswith(" key"))
        config_ok = all(ok for c, ok, _, _ in rows if c in ("config file", "journal"))
        if not (has_key and config_ok):
            return int(ExitCode.CONFIG)
        return int(failures[0].exit_code) if failures else 0

    run(ui, body)

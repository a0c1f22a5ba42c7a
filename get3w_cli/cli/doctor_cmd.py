"""``g3w doctor``: check the local set-up (config, keys, journal, ngrok, relay, cloudflared); sends nothing."""

from __future__ import annotations

import shutil

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.doctor_tunnels import tunnel_rows
from get3w_cli.cli.options import TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.config import mask
from get3w_cli.errors import G3wError
from get3w_cli.names import PROVIDERS


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
    ngrok = ctx.ngrok_path() or shutil.which("ngrok")
    rows.append(("ngrok authtoken", bool(settings.ngrok_authtoken), "set" if settings.ngrok_authtoken else "not set"))
    rows.append(("ngrok binary", bool(ngrok), ngrok or "not found (pyngrok would download it)"))
    rows += tunnel_rows(ctx)
    return rows


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

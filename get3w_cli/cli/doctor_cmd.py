"""``g3w doctor``: check the local set-up (config, keys, journal, ngrok) without sending anything."""

from __future__ import annotations

import os
import shutil

from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Flags, config_path, open_journal, settings_from
from get3w_cli.cli.render import Ui
from get3w_cli.config import mask
from get3w_cli.errors import G3wError


def _checks() -> list[tuple[str, bool, str]]:
    rows: list[tuple[str, bool, str]] = []
    path = config_path()
    try:
        settings = settings_from(Flags())
        rows.append(("config file", True, f"{path}" + ("" if path.exists() else " (not created yet)")))
    except G3wError as exc:
        return [("config file", False, exc.message)]
    for name in ("get3w", "abstrakt"):
        ps = settings.for_provider(name)
        rows.append((f"{name} key", bool(ps.api_key), mask(ps.api_key) or "not set"))
        rows.append((f"{name} base URL", True, ps.base_url))
    try:
        journal = open_journal(Flags())
        rows.append(("journal", True, str(journal.path)))
        journal.close()
    except G3wError as exc:
        rows.append(("journal", False, exc.message))
    ngrok = os.environ.get("NGROK_PATH") or shutil.which("ngrok")
    rows.append(("ngrok authtoken", bool(settings.ngrok_authtoken), "set" if settings.ngrok_authtoken else "not set"))
    rows.append(("ngrok binary", bool(ngrok), ngrok or "not found (pyngrok would download it)"))
    return rows


@app.command("doctor")
def doctor_cmd(json_out: O.Json = False, debug: O.Debug = False) -> None:
    """Check config, keys, journal and ngrok; exit 3 when no provider key is set."""
    ui = Ui(json_mode=json_out, debug=debug)

    async def body() -> int:
        rows = _checks()
        if json_out:
            ui.json([{"check": c, "ok": ok, "detail": d} for c, ok, d in rows])
        else:
            ui.table(("check", "ok", "detail"), [(c, "yes" if ok else "no", d) for c, ok, d in rows])
        has_key = any(ok for c, ok, _ in rows if c.endswith(" key"))
        config_ok = all(ok for c, ok, _ in rows if c in ("config file", "journal"))
        return 0 if has_key and config_ok else 3

    run(ui, body)

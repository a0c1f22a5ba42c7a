"""``g3w relay``: serve one callback URL for every g3w process on this machine (CONTRACT 8);
``g3w relay status [--json]``; ``g3w relay stop``.

The relay itself is ``callbacks.relay_service.serve_relay``; this module resolves the flags,
prints, runs it in the background for ``--detach`` (a new session, its talk in
``$G3W_HOME/relay.log``; the foreground waits for its public URL, then prints its pid), and asks
a running relay over its control port (``webhooks.relay_state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import G3wGroup, examples
from get3w_cli.cli.options import FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.errors import TunnelError, UsageError, WebhookSetupError
from get3w_cli.names import TunnelKind

HELP = "One callback URL for every g3w on this machine: serve it (--detach for the background), status, stop."
LOG_FILE = "relay.log"  # in G3W_HOME: a detached relay's talk
RELAY = "Relay"

relay_app = typer.Typer(help=HELP, invoke_without_command=True, rich_markup_mode=None, cls=G3wGroup, epilog=examples(
    ("serve in the background; runs and batches borrow it", "g3w relay --detach"),
    ("is one running, and at which URL", "g3w relay status --json"),
    ("stop it (its borrowers poll from then on)", "g3w relay stop")))
app.add_typer(relay_app, name="relay")


def _opt(*names: str, help: str, metavar: str | None = None) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=RELAY, metavar=metavar, show_default=False)


class RelayFlags(FlagGroup):
    """``g3w relay``'s own options (the relay's listener and tunnel)."""

    host: Annotated[str, _opt("--host", help="Address of the relay's listener (default 127.0.0.1).",
                              metavar="HOST")] = "127.0.0.1"
    port: Annotated[int, _opt("--port", help="Port of the relay's listener (default 0: any free port).",
                              metavar="PORT")] = 0
    tunnel: Annotated[TunnelKind, _opt(
        "--tunnel", help="auto: ngrok when an authtoken is set, else cloudflared when installed, else none "
        "(then only providers on this machine can reach it); or ngrok, cloudflared, none.")] = TunnelKind.AUTO
    public_url: Annotated[str | None, _opt(
        "--public-url", help="The relay's listener is already reachable at URL (your proxy or tunnel).",
        metavar="URL")] = None
    detach: Annotated[bool, _opt(
        "--detach", help="Serve in the background; print its pid once it is reachable (stop it: g3w relay stop).")
    ] = False


@relay_app.callback()
@options(help_overrides={"json_out": "Print one JSON object: the relay's description (with --detach: its pid)."})
def relay_cmd(typer_ctx: typer.Context, *, relay: RelayFlags, talk: TalkFlags) -> None:
    """One callback URL for every g3w on this machine: serve it (--detach for the background), status, stop."""
    if typer_ctx.invoked_subcommand is not None:
        return
    ui = Ui.for_talk(talk)

    async def body() -> int:
        ctx = Context()
        return await (_detach(ctx, relay, ui) if relay.detach else _serve(ctx, relay, ui))

    # Ctrl-C is how a relay in the foreground is stopped: not an error (exit 130, "relay stopped").
    run(ui, body, tracker=Tracker(serving=not relay.detach))


async def _serve(ctx: Context, flags: RelayFlags, ui: Ui) -> int:
    from get3w_cli.callbacks import ChannelOptions
    from get3w_cli.callbacks.relay_service import RelayOptions, serve_relay
    from get3w_cli.webhooks.relay_state import RelayInfo

    settings = ctx.settings()
    reach = ChannelOptions(tunnel=flags.tunnel, public_url=flags.public_url, ngrok_authtoken=settings.ngrok_authtoken,
                           ngrok_path=ctx.ngrok_path(), ngrok_search=ctx.ngrok_search(settings),
                           cloudflared_path=ctx.cloudflared_path())
    options = RelayOptions(host=flags.host, port=flags.port, state_dir=ctx.state_dir(), reach=reach)

    def ready(info: RelayInfo) -> None:
        if ui.json_mode:
            ui.json(_public_view(info.as_json()))
        else:
            ui.data(info.public_url)
        ui.note(f"relay on {info.local_url}, public URL {info.public_url} ({info.tunnel}); g3w run and batch on "
                "this machine borrow it (Ctrl-C or `g3w relay stop` stops it)")

    served = False

    def announce(info: RelayInfo) -> None:
        nonlocal served
        served = True
        ready(info)

    try:
        await serve_relay(options, notify=ui.notify, ready=announce)
    except WebhookSetupError as exc:
        # The tunnels' hints end with a run's fallbacks; the relay has --public-url, not --via.
        exc.hint = _NOT_FOR_RELAY.sub("", exc.hint) if exc.hint else exc.hint
        raise
    finally:
        if served:  # stopped: by `g3w relay stop`, or Ctrl-C (its borrowers poll from now on)
            ui.note("relay stopped")
    return 0


_NOT_FOR_RELAY = re.compile(r",? or (use )?--via poll")


def _public_view(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "secret"}


async def _detach(ctx: Context, flags: RelayFlags, ui: Ui) -> int:
    """Start the relay in the background; print its pid once it is reachable (or its failure)."""
    from get3w_cli.webhooks.relay_state import live_info

    folder = ctx.state_dir()
    running = live_info(folder)
    if running is not None:
        raise UsageError(f"a relay is already running (pid {running.pid}, {running.public_url})",
                         hint="use it as it is (g3w relay status), or stop it first: g3w relay stop")
    argv = [sys.executable, "-m", "get3w_cli", "relay", "--host", flags.host, "--port", str(flags.port),
            "--tunnel", flags.tunnel.value, *(["--public-url", flags.public_url] if flags.public_url else [])]
    log_path = folder / LOG_FILE
    proc = _spawn(argv, log_path)
    assert proc.stdout is not None
    reading = asyncio.ensure_future(asyncio.to_thread(proc.stdout.readline))
    done, _ = await asyncio.wait({reading}, timeout=C.RELAY_DETACH_TIMEOUT)
    if not done:
        proc.kill()  # its end of the pipe closes: the read in progress returns
    line = await reading
    proc.stdout.close()
    if not line.strip():
        code = await asyncio.to_thread(proc.wait)
        for text in _tail(log_path):
            ui.note(text)
        ui.error(f"the relay did not start (exit {code})", hint=f"its log is {log_path}")
        return code if code > 0 else int(TunnelError.exit_code)
    public = line.decode("utf-8", "replace").strip()
    if ui.json_mode:
        ui.json({"pid": proc.pid, "public_url": public, "log": str(log_path)})
    else:
        ui.data(str(proc.pid))
    ui.note(f"relay running in the background (pid {proc.pid}), public URL {public}; its log: {log_path}; "
            "stop it with: g3w relay stop")
    return 0


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """The relay in a session of its own (no terminal's Ctrl-C or hang-up reaches it), its talk in the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=C.JOURNAL_DIR_MODE)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, C.JOURNAL_FILE_MODE)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fd,  # noqa: S603
                                start_new_session=True, close_fds=True)
    finally:
        os.close(fd)


def _tail(path: Path, lines: int = C.CLOUDFLARED_LOG_TAIL) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


@relay_app.command("status", epilog=examples(
    ("is one running (exit 1 when not)", "g3w relay status"),
    ("its state for a script", "g3w relay status --json")))
@options(hide=("quiet",), help_overrides={"json_out": "Print the relay's state as one JSON object."})
def status_cmd(*, talk: TalkFlags) -> None:
    """Say whether a relay is running, and its public URL on stdout (exit 1 when none is)."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.webhooks.relay_state import describe

        report = await asyncio.to_thread(describe, Context().state_dir())
        if ui.json_mode:
            ui.json(report)
        elif report["alive"]:
            ui.data(report["public_url"])
            ui.note(f"relay running: pid {report['pid']}, {report['tunnel']}, local {report['local_url']}, "
                    f"{report['clients']} borrower(s), since {report['started_at']}")
        else:
            ui.note("no relay is running" + (f" ({report['error']})" if report.get("error") else ""))
        return 0 if report["alive"] else 1

    run(ui, body)


@relay_app.command("stop", epilog=examples(
    ("stop the relay started with --detach", "g3w relay stop"),
    ("quietly, at the end of a CI job (none running is fine)", "g3w relay stop -q")))
@options(hide=("json_out",))
def stop_cmd(*, talk: TalkFlags) -> None:
    """Stop the running relay (its borrowers poll from then on); nothing to stop is not an error."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.webhooks.relay_state import control, live_info, remove_stale, running

        folder = Context().state_dir()
        info = live_info(folder)
        if info is None:
            await asyncio.to_thread(remove_stale, folder)
            ui.note("no relay is running")
            return 0
        try:
            await asyncio.to_thread(control, info, "POST", "/stop")
        except TunnelError:
            # It holds the lock but does not answer: end it the way Ctrl-C would.
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + C.RELAY_STOP_TIMEOUT
        while running(folder):
            if asyncio.get_running_loop().time() >= deadline:
                raise TunnelError(f"the relay (pid {info.pid}) did not stop within {C.RELAY_STOP_TIMEOUT:g}s",
                                  kind="relay_unreachable", hint=f"end it with: kill {info.pid}")
            await asyncio.sleep(C.RELAY_STOP_POLL)
        ui.success(f"stopped the relay (pid {info.pid})")
        return 0

    run(ui, body)


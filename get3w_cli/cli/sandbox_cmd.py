"""``g3w sandbox``: serve the local stand-in for both providers until Ctrl-C."""

from __future__ import annotations

from typing import Optional

import typer

from get3w_cli import constants as C
from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.render import Ui


@app.command("sandbox")
def sandbox_cmd(
    port: int = typer.Option(C.SANDBOX_DEFAULT_PORT, "--port", help="Port to serve on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    duration: str = typer.Option(f"{C.SANDBOX_DEFAULT_DURATION:g}s", "--duration", help="How long each task takes."),
    webhook_secret: Optional[str] = typer.Option(None, "--webhook-secret", help="Sign webhook deliveries with this secret."),
    duplicates: int = typer.Option(0, "--duplicates", help="Send each webhook this many extra times."),
    time_scale: float = typer.Option(1.0, "--webhook-time-scale", help="Multiply webhook retry delays (0.01 for tests)."),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", help="Answer 429 above this many running tasks per key."),
    quiet: O.Quiet = False,
    debug: O.Debug = False,
) -> None:
    """Serve a local emulation of Get3W (v1, v3) and Abstrakt: any key except sk_invalid / sk_broke works.

    Point g3w at it with --base-url http://127.0.0.1:PORT (or GET3W_BASE_URL / ABSTRAKT_BASE_URL).
    Per-task controls go in the inputs: sandbox_duration, sandbox_fail, sandbox_outputs,
    sandbox_output_bytes, sandbox_webhook=drop|early|late_processing.
    """
    ui = Ui(quiet=quiet, debug=debug)

    async def body() -> int:
        from get3w_cli.config import parse_duration
        from get3w_cli.sandbox import SandboxOptions, serve

        options = SandboxOptions(duration=parse_duration(duration), webhook_secret=webhook_secret,
                                 webhook_duplicates=duplicates, webhook_time_scale=time_scale,
                                 max_concurrent=max_concurrent)

        def ready(url: str) -> None:
            ui.err.print(f"Sandbox listening on {url}  (Ctrl-C to stop)")
            ui.data(url)

        await serve(options, host=host, port=port, on_ready=ready)
        return 0

    run(ui, body)

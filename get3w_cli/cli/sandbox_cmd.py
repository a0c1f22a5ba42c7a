"""``g3w sandbox``: serve the local stand-in for both providers until Ctrl-C."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui


def _opt(*names: str, help: str, metavar: str | None = None) -> Any:
    return typer.Option(*names, help=help, metavar=metavar, show_default=False)


class SandboxFlags(FlagGroup):
    """``g3w sandbox``'s options (the SandboxOptions it starts with)."""

    port: Annotated[int, _opt("--port", metavar="PORT", help=f"Port to serve on (default {C.SANDBOX_DEFAULT_PORT}; "
                                                             "0: any free port).")] = C.SANDBOX_DEFAULT_PORT
    host: Annotated[str, _opt("--host", metavar="HOST", help="Address to bind (default 127.0.0.1).")] = "127.0.0.1"
    duration: Annotated[str, _opt("--duration", metavar="DURATION",
                                  help=f"How long each task takes (default {C.SANDBOX_DEFAULT_DURATION:g}s).")] \
        = f"{C.SANDBOX_DEFAULT_DURATION:g}s"
    webhook_secret: Annotated[str | None, _opt(
        "--webhook-secret", metavar="SECRET", help="Sign webhook deliveries with this secret.")] \
        = None
    duplicates: Annotated[int, _opt("--duplicates", metavar="N",
                                    help="Send each webhook this many extra times (default 0).")] = 0
    time_scale: Annotated[float, _opt("--webhook-time-scale", metavar="FACTOR",
                                      help="Multiply webhook retry delays (default 1; 0.01 for tests).")] = 1.0
    max_concurrent: Annotated[int | None, _opt(
        "--max-concurrent", metavar="N", help="Answer 429 above this many running tasks per key.")] = None


@app.command("sandbox", epilog=examples(
    ("serve on port 8080, then point g3w at it", "g3w sandbox --port 8080"),
    ("in another shell", "GET3W_BASE_URL=http://127.0.0.1:8080 g3w run flux-dev -p x"),
    ("signed webhooks, retried faster", "g3w sandbox --webhook-secret s3cret --webhook-time-scale 0.1"),
))
@options(hide=("json_out",))
def sandbox_cmd(*, sandbox: SandboxFlags, talk: TalkFlags) -> None:
    """Serve a local emulation of Get3W (v1, v3) and Abstrakt: any key except sk_invalid / sk_broke works.

    Point g3w at it with --base-url http://127.0.0.1:PORT (or GET3W_BASE_URL / ABSTRAKT_BASE_URL).
    Per-task controls go in the inputs: sandbox_duration, sandbox_fail, sandbox_outputs,
    sandbox_output_bytes, sandbox_webhook=drop|early|late_processing.
    """
    ui = Ui.for_talk(talk)

    async def body() -> int:
        from get3w_cli.config import parse_duration
        from get3w_cli.sandbox import SandboxOptions, serve

        options = SandboxOptions(duration=parse_duration(sandbox.duration), webhook_secret=sandbox.webhook_secret,
                                 webhook_duplicates=sandbox.duplicates, webhook_time_scale=sandbox.time_scale,
                                 max_concurrent=sandbox.max_concurrent)

        def ready(url: str) -> None:
            ui.err.print(f"Sandbox listening on {url}  (Ctrl-C to stop)")
            ui.data(url)

        await serve(options, host=sandbox.host, port=sandbox.port, on_ready=ready)
        return 0

    run(ui, body)

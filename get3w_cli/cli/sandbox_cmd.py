"""``g3w sandbox``: serve the local stand-in for both providers until Ctrl-C.

stdout: its base URL. stderr: where it listens, the ``export`` lines that point g3w at it, one
line per request answered, and on Ctrl-C (exit 130, the normal way to stop it) how many it served.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.context import SANDBOX_KEY
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.names import FACTS, PROVIDERS, SignatureScheme


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
    signature_scheme: Annotated[SignatureScheme, _opt(
        "--signature-scheme", metavar="SCHEME", help="How webhook deliveries are signed: native (each API its own "
        "way, the default), get3w, abstrakt, abstrakt-body, standard-v1 (webhook-signature v1,<base64>, whsec_ "
        "secret decoded), wavespeed-v3 (v3,<hex>, whsec_ secret as text).")] = SignatureScheme.NATIVE
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
    served = [0]

    def answered(method: str, path: str, status: int | None) -> None:
        served[0] += 1
        ui.note(request_line(method, path, status))

    async def body() -> int:
        from get3w_cli.config import parse_duration
        from get3w_cli.sandbox import SandboxOptions, serve

        options = SandboxOptions(duration=parse_duration(sandbox.duration), webhook_secret=sandbox.webhook_secret,
                                 signature_scheme=sandbox.signature_scheme, webhook_duplicates=sandbox.duplicates,
                                 webhook_time_scale=sandbox.time_scale, max_concurrent=sandbox.max_concurrent,
                                 on_request=answered)

        def ready(url: str) -> None:
            ui.data(url)
            for line in announce(url, secret=sandbox.webhook_secret is not None):
                ui.note(line)

        try:
            await serve(options, host=sandbox.host, port=sandbox.port, on_ready=ready)
        finally:
            ui.note(f"{served[0]} request(s) served")
        return 0

    run(ui, body, tracker=Tracker(serving=True))


def announce(url: str, *, secret: bool) -> list[str]:
    """What ``g3w sandbox`` says once it listens: where, and the lines to paste into another shell."""
    lines = [f"Sandbox listening on {url}  (Ctrl-C to stop)",
             "Point g3w at it from another shell (any key works but sk_invalid, sk_broke):"]
    lines += [f"  export {FACTS[p].base_url_env}={url}" for p in PROVIDERS]
    lines.append("  export " + " ".join(f"{FACTS[p].key_env}={SANDBOX_KEY}" for p in PROVIDERS))
    if secret:
        lines.append("  export " + " ".join(f"{FACTS[p].secret_env}=<your --webhook-secret>" for p in PROVIDERS))
    return lines


def request_line(method: str, path: str, status: int | None) -> str:
    """One request, as the sandbox answered it: ``10:00:03  POST /api/v3/get3w/flux-dev  200``
    (never its query or headers: a callback URL's token, a key)."""
    from get3w_cli.webhooks.http_common import one_line

    answer = "dropped" if status is None else str(status)
    return f"{time.strftime('%H:%M:%S')}  {method:<6} {one_line(path)}  {answer}"

"""``g3w listen``: a standalone webhook receiver (CONTRACT.md section 5).

stdout: the callback URL first with ``--print-url``, then one JSON object per unique event with
``--json`` (nothing else). stderr: ``Listening on <url>``, the public URL, one line per unique
event, and one rate-limited line per rejected request. Exit: 0 after ``--count`` final events
or a completed ``--for`` task, 1 when the ``--for`` task failed or was cancelled, 4 on
``--timeout``, 7 when the port or tunnel cannot be set up, 130 on Ctrl-C; ``--replay``: 0 when
the target answered 2xx, 6 otherwise.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.listen_output import show
from get3w_cli.cli.options import OUT, FlagGroup, TalkFlags, options
from get3w_cli.cli.render import Ui, describe_duration
from get3w_cli.errors import ExitCode, NetworkError, UsageError
from get3w_cli.names import PROVIDERS, Provider, TunnelKind

if TYPE_CHECKING:
    from get3w_cli.webhooks.listen_loop import Actions, ListenOutcome, StopRules
    from get3w_cli.webhooks.ngrok_agent import AgentSearch
    from get3w_cli.webhooks.receiver import Receiver, ReceiverConfig

LISTEN = "Listen options"
ACT = "Actions"


@dataclass(frozen=True)
class ListenRequest:
    """Everything ``g3w listen`` was asked to do, checked."""

    config: ReceiverConfig
    rules: StopRules
    actions: Actions
    tunnel: str
    public_url: str | None
    authtoken: str | None
    ngrok: AgentSearch  # where the ngrok agent may be, and whether pyngrok may install it
    print_url: bool
    json_mode: bool
    cloudflared_path: str | None = None


def _check_url(url: str, flag: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{flag} {url!r} is not an http(s) URL", hint=f"e.g. {flag} http://localhost:8000/webhook")
    return url.strip()


def _stderr_fd() -> int | None:
    """With --json, --exec commands write to our stderr: stdout carries only event lines."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _save_dir(save: str | None) -> Path | None:
    if save is None:
        return None
    directory = Path(save).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --save {save}: {exc.strerror or exc}") from exc
    return directory


def build_request(ctx: Context, flags: ListenFlags, *, json_mode: bool) -> ListenRequest:
    """Resolve settings (secrets, ngrok token) and check every option before binding."""
    from get3w_cli.config import parse_duration
    from get3w_cli.webhooks.listen_loop import Actions, StopRules
    from get3w_cli.webhooks.receiver import ReceiverConfig

    settings = ctx.settings(provider=flags.provider, webhook_secret=flags.secret)
    rules = StopRules(for_id=flags.for_id, count=flags.count,
                      timeout=None if flags.timeout is None else parse_duration(flags.timeout))
    forward = _check_url(flags.forward_to, "--forward-to") if flags.forward_to else None
    public = _check_url(flags.public_url, "--public-url") if flags.public_url else None
    save_dir = _save_dir(flags.save)  # last: nothing is created when another option is wrong
    config = ReceiverConfig(host=flags.host, port=flags.port, path=flags.path or None, provider=flags.provider,
                            keep_raw=save_dir is not None,
                            secrets={p: settings.for_provider(p).webhook_secret or "" for p in PROVIDERS})
    actions = Actions(forward_to=forward, exec_command=flags.exec_cmd or None, save_dir=save_dir,
                      exec_stdout=_stderr_fd() if json_mode else None)
    return ListenRequest(config, rules, actions, flags.tunnel, public, settings.ngrok_authtoken,
                         ctx.ngrok_search(settings), flags.print_url, json_mode,
                         ctx.cloudflared_path())


def _opt(flag: str, help: str, *, panel: str = ACT, **extra: Any) -> Any:
    return typer.Option(flag, help=help, rich_help_panel=panel, show_default=False, **extra)


class ListenFlags(FlagGroup):
    """``g3w listen``'s own options."""

    port: Annotated[int, _opt("--port", f"Port to listen on (default {C.LISTEN_DEFAULT_PORT}; 0: any free port).",
                              panel=LISTEN, metavar="PORT")] = C.LISTEN_DEFAULT_PORT
    host: Annotated[str, _opt("--host", "Address to bind (default 127.0.0.1; 0.0.0.0: every interface).",
                              panel=LISTEN, metavar="HOST")] = "127.0.0.1"
    path: Annotated[str | None, _opt(
        "--path", "Accept deliveries only at this path; others get 404 (default: any path).", panel=LISTEN,
        metavar="PATH")] = None
    tunnel: Annotated[TunnelKind, _opt("--tunnel", "auto: ngrok when an authtoken is set; ngrok; cloudflared; none.",
                                       panel=LISTEN)] = TunnelKind.AUTO
    public_url: Annotated[str | None, _opt(
        "--public-url", "This listener is already reachable at URL (your proxy or tunnel).", panel=LISTEN,
        metavar="URL")] = None
    secret: Annotated[str | None, _opt(
        "--secret", "Verify signatures; bad ones get 401 (default GET3W_WEBHOOK_SECRET / ABSTRAKT_WEBHOOK_SECRET).",
        panel=LISTEN, metavar="SECRET")] = None
    provider: Annotated[Provider | None, _opt(
        "--provider", "Provider of unverified deliveries (default: from the payload shape); with a secret, the "
        "secret that verifies a delivery decides.", panel=LISTEN)] = None
    print_url: Annotated[bool, _opt("--print-url", "Print the callback URL on stdout first (for scripts).",
                                    panel=OUT)] = False
    forward_to: Annotated[str | None, _opt(
        "--forward-to", "Re-POST each event's original body and signature headers to URL, retrying while it is down.",
        metavar="URL")] = None
    exec_cmd: Annotated[str | None, _opt(
        "--exec", "Run CMD (shell) for each unique event, with the event JSON on stdin.", metavar="CMD")] = None
    save: Annotated[str | None, _opt(
        "--save", "Write every delivery (headers and raw body) to DIR as JSON.", metavar="DIR")] = None
    replay: Annotated[str | None, _opt(
        "--replay", "Send a --save FILE to --forward-to again, then exit (no listener); with --secret, a delivery "
        "saved as verified is re-signed.", metavar="FILE")] = None
    for_id: Annotated[str | None, _opt(
        "--for", "Exit after task ID's final event (0 completed, 1 failed or cancelled).", metavar="ID")] = None
    count: Annotated[int | None, _opt("--count", "Exit 0 after N unique final events.", metavar="N", min=1)] = None
    timeout: Annotated[str | None, _opt(
        "--timeout", "Exit 4 when this runs out before --for / --count are met (90, 5m, 1h30m).",
        metavar="DURATION")] = None


@app.command("listen", epilog=examples(
    ("verify signatures, events as JSON Lines", 'g3w listen --port 3000 --secret "$GET3W_WEBHOOK_SECRET" --json'),
    ("through ngrok, to your app", "g3w listen --tunnel ngrok --print-url --forward-to http://localhost:8000/hook"),
    ("exit with one task's outcome", "g3w listen --for pred_abc123 --timeout 10m"),
))
@options(help_overrides={"json_out": "One JSON object per unique event on stdout (JSON Lines)."})
def listen_cmd(*, listen: ListenFlags, talk: TalkFlags) -> None:
    """Receive webhooks: print each unique event, forward it, run a command, save deliveries."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        ctx = Context()
        if listen.replay is not None:
            return await _replay(ctx, ui, listen)
        request = build_request(ctx, listen, json_mode=talk.json_out)
        return _exit_code(ui, request, await serve(ui, request))

    run(ui, body, tracker=Tracker(serving=listen.replay is None))


async def serve(ui: Ui, request: ListenRequest) -> ListenOutcome:
    """Bind, open the tunnel if asked, announce the URL, and listen until a stop rule is met."""
    from get3w_cli.webhooks.http_common import NoteLimiter
    from get3w_cli.webhooks.listen_loop import listen
    from get3w_cli.webhooks.receiver import Receiver

    notes = NoteLimiter(ui.warn)
    receiver = Receiver(request.config, notes)
    async with AsyncExitStack() as stack:
        await receiver.start()
        stack.push_async_callback(receiver.close)
        public = await _public_base(request, receiver.port, stack, ui)
        _announce(ui, request, receiver, public)
        stack.callback(_summary, ui, receiver)
        said: set[str] = set()  # the unknown status words already mentioned
        return await listen(receiver, request.rules, request.actions, on_event=lambda e: show(ui, e, said),
                            note=ui.note)


async def _public_base(request: ListenRequest, port: int, stack: AsyncExitStack, ui: Ui) -> str | None:
    if request.public_url:
        return request.public_url
    if request.tunnel == TunnelKind.CLOUDFLARED:  # asked for by name only: auto never exposes listen this way
        from get3w_cli.webhooks.cloudflared import open_cloudflared

        quick = await open_cloudflared(port, path=request.cloudflared_path)
        stack.push_async_callback(quick.close)
        return quick.public_url
    if request.tunnel == TunnelKind.NONE or (request.tunnel == TunnelKind.AUTO and not request.authtoken):
        return None
    from get3w_cli.webhooks.tunnel import open_ngrok

    tunnel = await open_ngrok(port, authtoken=request.authtoken, search=request.ngrok, notify=ui.notify)
    stack.push_async_callback(tunnel.close)
    return tunnel.public_url


def _announce(ui: Ui, request: ListenRequest, receiver: Receiver, public: str | None) -> None:
    url = receiver.callback_url(public)
    if request.print_url:
        ui.data(url)
    where = "" if request.config.path else " (any path)"
    ui.note(f"Listening on {receiver.local_url}{where}  (Ctrl-C to stop)")
    if public:
        ui.note(f"Public URL: {url}")
    if not any(request.config.secrets.values()):
        exposed = " Anyone who knows the public URL can post events." if public else ""
        ui.note(f"No webhook secret: events are not verified (--secret or GET3W_WEBHOOK_SECRET).{exposed}")


def _summary(ui: Ui, receiver: Receiver) -> None:
    receiver.notes.flush()
    stats = receiver.stats
    ui.note(f"{stats.events} event(s), {stats.duplicates} duplicate(s), {stats.stale} stale, "
            f"{stats.rejected} rejected")


def _exit_code(ui: Ui, request: ListenRequest, outcome: ListenOutcome) -> int:
    from get3w_cli.errors import TaskFailedError, WaitTimeoutError
    from get3w_cli.records import Status
    from get3w_cli.webhooks.listen_loop import FOR_DONE, TIMED_OUT

    if outcome.reason == FOR_DONE and outcome.event is not None:
        if outcome.event.task.status is not Status.COMPLETED:
            raise TaskFailedError(outcome.event.task)
        return 0
    if outcome.reason == TIMED_OUT:
        if request.rules.for_id:
            raise WaitTimeoutError(request.rules.for_id)
        seconds = describe_duration(request.rules.timeout or 0.0)
        ui.error(f"timed out after {seconds} with {outcome.finals} final event(s)")
        return int(ExitCode.TIMEOUT)
    return 0


async def _replay(ctx: Context, ui: Ui, flags: ListenFlags) -> int:
    from get3w_cli.webhooks.forwarder import replay

    file = flags.replay or ""
    if not flags.forward_to:
        raise UsageError("--replay needs --forward-to URL",
                         hint="g3w listen --replay FILE --forward-to http://localhost:8000/hook")
    url = _check_url(flags.forward_to, "--forward-to")
    result = await replay(Path(file), url, secret=flags.secret, provider=flags.provider,
                          on_not_resigned=lambda why: ui.warn(f"{file} was sent as saved, not re-signed: {why}"))
    if not result.ok:
        raise NetworkError(f"could not replay {file} to {url}: {result.describe()}",
                           hint="check that the app is running and accepts the delivery")
    ui.success(f"replayed {file} to {url}: {result.describe()}")
    return 0

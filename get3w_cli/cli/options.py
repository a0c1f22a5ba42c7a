"""Option declarations shared by several commands (one definition, many commands)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

import typer


class Via(str, Enum):
    auto = "auto"
    webhook = "webhook"
    poll = "poll"
    sync = "sync"


class TunnelKind(str, Enum):
    auto = "auto"
    ngrok = "ngrok"
    none = "none"


class OnTimeout(str, Enum):
    detach = "detach"
    cancel = "cancel"


class Channel(str, Enum):
    economy = "economy"
    stable = "stable"
    official = "official"


class ProviderName(str, Enum):
    get3w = "get3w"
    abstrakt = "abstrakt"


class ApiName(str, Enum):
    v1 = "v1"
    v3 = "v3"


CONN = "Provider"
WAIT = "Waiting"
OUT = "Output"
INPUT = "Input"

Model = Annotated[str, typer.Argument(help="Model: flux-dev, owner/name, provider/model/task, or abstrakt:<model>.")]
TaskId = Annotated[str, typer.Argument(help="The task id (prediction / request / job id).")]

Provider = Annotated[Optional[ProviderName], typer.Option("--provider", help="get3w or abstrakt (default from the model name, G3W_PROVIDER, config).", rich_help_panel=CONN)]
Api = Annotated[Optional[ApiName], typer.Option("--api", help="Get3W API: v1 or v3 (default from the model name).", rich_help_panel=CONN)]
ApiKey = Annotated[Optional[str], typer.Option("--api-key", help="API key (default GET3W_API_KEY / ABSTRAKT_API_KEY / config).", rich_help_panel=CONN, show_default=False)]
BaseUrl = Annotated[Optional[str], typer.Option("--base-url", help="Provider base URL, no path (default GET3W_BASE_URL / ABSTRAKT_BASE_URL).", rich_help_panel=CONN)]
Sandbox = Annotated[bool, typer.Option("--sandbox", help="Run against an in-process sandbox provider: no key, no network.", rich_help_panel=CONN)]
NoHistory = Annotated[bool, typer.Option("--no-history", help="Do not record tasks in the local journal.", rich_help_panel=CONN)]

Prompt = Annotated[Optional[str], typer.Option("--prompt", "-p", help="Sets the `prompt` input.", rich_help_panel=INPUT)]
Params = Annotated[Optional[List[str]], typer.Option("--param", "-i", help="KEY=VALUE (JSON if it parses), KEY:=JSON, or KEY=@FILE (uploaded). Repeatable.", rich_help_panel=INPUT, show_default=False)]
InputFile = Annotated[Optional[str], typer.Option("--input", help="JSON object of inputs from FILE, or - for stdin.", rich_help_panel=INPUT)]
ChannelOpt = Annotated[Optional[Channel], typer.Option("--channel", help="Get3W v1 service tier.", rich_help_panel=INPUT)]

ViaOpt = Annotated[Optional[Via], typer.Option("--via", help="How to wait: auto, webhook, poll or sync (default auto).", rich_help_panel=WAIT, show_default=False)]
Timeout = Annotated[Optional[str], typer.Option("--timeout", help="The whole wait: 90, 90s, 5m, 1h30m (default 30m).", rich_help_panel=WAIT, show_default=False)]
FallbackAfter = Annotated[Optional[str], typer.Option("--fallback-after", help="Poll when no callback came in this long (default max(60s, 2 x estimate)).", rich_help_panel=WAIT, show_default=False)]
PollMax = Annotated[str, typer.Option("--poll-max", help="Longest interval between polls.", rich_help_panel=WAIT)]
Tunnel = Annotated[TunnelKind, typer.Option("--tunnel", help="auto: ngrok when an authtoken is set; ngrok; none.", rich_help_panel=WAIT)]
PublicUrl = Annotated[Optional[str], typer.Option("--public-url", help="The listener is already reachable at URL (your proxy or tunnel).", rich_help_panel=WAIT)]
ListenHost = Annotated[str, typer.Option("--listen-host", help="Address of the ephemeral webhook listener.", rich_help_panel=WAIT)]
ListenPort = Annotated[int, typer.Option("--listen-port", help="Port of the ephemeral webhook listener (0: any free port).", rich_help_panel=WAIT)]
WebhookSecret = Annotated[Optional[str], typer.Option("--webhook-secret", help="Verify callback signatures (default GET3W_WEBHOOK_SECRET / ABSTRAKT_WEBHOOK_SECRET).", rich_help_panel=WAIT, show_default=False)]
OnTimeoutOpt = Annotated[OnTimeout, typer.Option("--on-timeout", help="On timeout or Ctrl-C: leave the task running (detach) or cancel it.", rich_help_panel=WAIT)]

Output = Annotated[Optional[str], typer.Option("--output", "-o", help="Download outputs into DIR as <id>_<index>.<ext>.", rich_help_panel=OUT)]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object (the task record) on stdout.", rich_help_panel=OUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages on stderr (errors still show).", rich_help_panel=OUT)]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.", rich_help_panel=OUT)]

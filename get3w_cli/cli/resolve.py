"""Flags (plus the environment and the config file) into the core's requests, once per command.

Every default lives in one place: a flag group's "not given" value is None (options.py), and the
value used instead comes from the settings (config.py: environment, file, default) or from
constants.py. Nothing below the CLI reads flags, the environment or the config file again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from get3w_cli import constants as C
from get3w_cli.cli.context import Access, Context
from get3w_cli.errors import UsageError
from get3w_cli.names import Api, Provider

if TYPE_CHECKING:
    from get3w_cli.cli.options import AccountFlags, InputFlags, JournalFlags, OutputFlags, RouteFlags, WaitFlags
    from get3w_cli.config import Settings
    from get3w_cli.providers import Route
    from get3w_cli.tasks import TaskSpec, WaitRequest


def model_route(ctx: Context, model: str, route: RouteFlags) -> Route:
    """The route of ``model``: its prefix, else --provider, else G3W_PROVIDER / config, else Get3W.

    Raises:
        UsageError: the model fits no provider or API.
    """
    from get3w_cli.providers import resolve_route

    default = route.provider or ctx.settings().provider
    return resolve_route(model, provider=default if ":" not in model else route.provider, api=route.api)


def task_spec(ctx: Context, route: Route, inputs: InputFlags, journal: JournalFlags | None = None) -> TaskSpec:
    """The task's inputs (and its idempotency key), read and checked before anything is sent.

    Raises:
        UsageError: bad -i, an unreadable --input, @FILE or prompt, --channel for another API, or a
            bad idempotency key (or one with --no-history, which keeps no journal to find it in).
    """
    from get3w_cli.cli.inputs import parse_inputs
    from get3w_cli.tasks import TaskSpec

    parsed = parse_inputs(inputs.prompt, inputs.param or [], inputs.input_file, inputs.prompt_file)
    if inputs.channel is not None:
        if (route.provider, route.api) != (Provider.GET3W, Api.V1):
            raise UsageError("--channel applies to Get3W v1 models (provider/model/task) only")
        parsed.values["channel"] = inputs.channel.value
    key = idempotency_key(ctx, inputs, journal)
    return TaskSpec(route=route, input=dict(parsed.values), uploads=dict(parsed.uploads), idempotency_key=key,
                    resubmit_unknown=inputs.resubmit_unknown)


def idempotency_key(ctx: Context, inputs: InputFlags, journal: JournalFlags | None) -> str | None:
    """--idempotency-key, else G3W_IDEMPOTENCY_KEY: a header value, so printable ASCII, bounded.

    Raises:
        UsageError: a key that cannot be a header, or one given with --no-history.
    """
    key = inputs.idempotency_key if inputs.idempotency_key is not None else ctx.env.get("G3W_IDEMPOTENCY_KEY")
    if not key:
        if inputs.resubmit_unknown:
            raise UsageError("--resubmit-unknown applies only with --idempotency-key (or G3W_IDEMPOTENCY_KEY)")
        return None
    if not (key.isascii() and key.isprintable()) or len(key) > C.IDEMPOTENCY_KEY_MAX_CHARS:
        raise UsageError("the idempotency key must be printable ASCII, at most "
                         f"{C.IDEMPOTENCY_KEY_MAX_CHARS} characters")
    if journal is not None and journal.no_history:
        raise UsageError("--idempotency-key needs the journal, which --no-history turns off",
                         hint="drop --no-history (keep G3W_HOME between runs, e.g. in a CI cache)")
    return key


def wait_request(ctx: Context, settings: Settings, wait: WaitFlags, output: OutputFlags | None = None) -> WaitRequest:
    """The wait options: --via, --timeout and -o fall back on the settings, the rest on constants.
    The -o folder is created and checked here, before anything is paid for.

    Raises:
        UsageError: a duration that does not parse, an -o folder that cannot be written.
    """
    from get3w_cli.callbacks import ChannelOptions
    from get3w_cli.config import parse_duration
    from get3w_cli.tasks import WaitRequest
    from get3w_cli.waiting import WaitPlan

    plan = WaitPlan(
        timeout=settings.timeout,
        fallback_after=None if wait.fallback_after is None else parse_duration(wait.fallback_after),
        poll_max=C.POLL_MAX_DEFAULT if wait.poll_max is None else parse_duration(wait.poll_max),
        on_timeout=wait.on_timeout,
    )
    channel = ChannelOptions(listen_host=wait.listen_host, listen_port=wait.listen_port, tunnel=wait.tunnel,
                             public_url=wait.public_url, ngrok_authtoken=settings.ngrok_authtoken,
                             ngrok_path=ctx.ngrok_path(), ngrok_search=ctx.ngrok_search(settings),
                             cloudflared_path=ctx.cloudflared_path(), relay_dir=str(ctx.state_dir()),
                             no_relay=wait.no_relay)
    from get3w_cli.cli.inputs import output_dir

    folder = (output.output if output else None) or settings.output
    return WaitRequest(via=settings.via, plan=plan, channel=channel,
                       output_dir=output_dir(folder) if folder else None)


def access(ctx: Context, account: AccountFlags, journal: JournalFlags | None = None, *, provider: str | None = None,
           wait: WaitFlags | None = None, output: OutputFlags | None = None, many_requests: bool = False) -> Access:
    """The settings for ``provider`` (the key flags apply to it) and how to reach it (``many_requests``:
    a batch's HTTP backend)."""
    settings = ctx.settings(provider=provider, api_key=account.api_key, base_url=account.base_url,
                            webhook_secret=wait.webhook_secret if wait else None, via=wait.via if wait else None,
                            timeout=wait.timeout if wait else None, output=output.output if output else None)
    return Access(settings=settings, sandbox=account.sandbox, no_history=bool(journal and journal.no_history),
                  backend=ctx.http_backend(many_requests=many_requests))

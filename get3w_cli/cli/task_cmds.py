"""Commands on single tasks: run, submit, get, wait, cancel."""

from __future__ import annotations

import os
from typing import Optional

from get3w_cli.cli import options as O
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import Tracker, run
from get3w_cli.cli.context import Flags
from get3w_cli.cli.render import Ui


def _flags(provider: Optional[O.ProviderName], api_key: Optional[str], base_url: Optional[str], *,
           sandbox: bool = False, no_history: bool = False, via: Optional[O.Via] = None,
           timeout: Optional[str] = None, webhook_secret: Optional[str] = None) -> Flags:
    return Flags(
        provider=provider.value if provider else None, api_key=api_key, base_url=base_url,
        webhook_secret=webhook_secret, via=via.value if via else None, timeout=timeout,
        no_history=no_history, sandbox=sandbox,
    )


def build_wait_request(flags: Flags, *, fallback_after: Optional[str], poll_max: str, tunnel: O.TunnelKind,
                       public_url: Optional[str], listen_host: str, listen_port: int, on_timeout: O.OnTimeout,
                       output: Optional[str]):  # -> WaitRequest (imported lazily to keep start-up light)
    """Resolve the wait options (settings give via, timeout, output and the ngrok token)."""
    from get3w_cli.callbacks import ChannelOptions
    from get3w_cli.cli.context import settings_from
    from get3w_cli.cli.flows import WaitRequest
    from get3w_cli.config import parse_duration
    from get3w_cli.waiting import WaitPlan

    settings = settings_from(flags)
    plan = WaitPlan(
        timeout=settings.timeout,
        fallback_after=None if fallback_after is None else parse_duration(fallback_after),
        poll_max=parse_duration(poll_max),
        on_timeout=on_timeout.value,
    )
    channel = ChannelOptions(
        listen_host=listen_host, listen_port=listen_port, tunnel=tunnel.value, public_url=public_url,
        ngrok_authtoken=settings.ngrok_authtoken, ngrok_path=os.environ.get("NGROK_PATH") or None,
    )
    return WaitRequest(via=settings.via, plan=plan, channel=channel, output_dir=output or settings.output)


@app.command("run")
def run_cmd(
    model: O.Model,
    prompt: O.Prompt = None,
    param: O.Params = None,
    input_file: O.InputFile = None,
    channel: O.ChannelOpt = None,
    via: O.ViaOpt = None,
    timeout: O.Timeout = None,
    fallback_after: O.FallbackAfter = None,
    poll_max: O.PollMax = "10s",
    tunnel: O.Tunnel = O.TunnelKind.auto,
    public_url: O.PublicUrl = None,
    listen_host: O.ListenHost = "127.0.0.1",
    listen_port: O.ListenPort = 0,
    webhook_secret: O.WebhookSecret = None,
    on_timeout: O.OnTimeoutOpt = O.OnTimeout.detach,
    output: O.Output = None,
    json_out: O.Json = False,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
    no_history: O.NoHistory = False,
) -> None:
    """Submit one task and wait for it; print its outputs (or files with -o)."""
    ui, tracker = Ui(quiet=quiet, json_mode=json_out, debug=debug), Tracker()

    async def body() -> int:
        from get3w_cli.cli.flows import run_flow

        flags, route, inputs = _prepare(model, provider, api, api_key, base_url, prompt, param, input_file, channel,
                                        sandbox=sandbox, no_history=no_history, via=via, timeout=timeout,
                                        webhook_secret=webhook_secret)
        request = build_wait_request(flags, fallback_after=fallback_after, poll_max=poll_max, tunnel=tunnel,
                                     public_url=public_url, listen_host=listen_host, listen_port=listen_port,
                                     on_timeout=on_timeout, output=output)
        with ui.activity("starting"):
            return await run_flow(flags, route, inputs, request, ui, tracker)

    run(ui, body, tracker=tracker)


def _prepare(model, provider, api, api_key, base_url, prompt, param, input_file, channel, **flag_args):
    """Parse everything a submit needs, before anything is sent."""
    from get3w_cli.cli.context import settings_from
    from get3w_cli.cli.inputs import parse_inputs
    from get3w_cli.errors import UsageError
    from get3w_cli.providers import resolve_route

    flags = _flags(provider, api_key, base_url, **flag_args)
    default_provider = flags.provider or settings_from(flags).provider
    route = resolve_route(model, provider=default_provider if ":" not in model else flags.provider,
                          api=api.value if api else None)
    flags = _flags(O.ProviderName(route.provider), api_key, base_url, **flag_args)
    inputs = parse_inputs(prompt, param or [], input_file)
    if channel is not None:
        if (route.provider, route.api) != ("get3w", "v1"):
            raise UsageError("--channel applies to Get3W v1 models (provider/model/task) only")
        inputs.values["channel"] = channel.value
    return flags, route, inputs


@app.command("submit")
def submit_cmd(
    model: O.Model,
    prompt: O.Prompt = None,
    param: O.Params = None,
    input_file: O.InputFile = None,
    channel: O.ChannelOpt = None,
    webhook_url: Optional[str] = O.typer.Option(None, "--webhook-url", help="Register this callback URL with the task."),
    json_out: O.Json = False,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
    no_history: O.NoHistory = False,
) -> None:
    """Submit a task, print its id, do not wait."""
    ui, tracker = Ui(quiet=quiet, json_mode=json_out, debug=debug), Tracker()

    async def body() -> int:
        from get3w_cli.cli.flows import submit_flow

        flags, route, inputs = _prepare(model, provider, api, api_key, base_url, prompt, param, input_file, channel,
                                        sandbox=sandbox, no_history=no_history)
        return await submit_flow(flags, route, inputs, webhook_url, ui, tracker)

    run(ui, body, tracker=tracker)


@app.command("get")
def get_cmd(
    task_id: O.TaskId,
    json_out: O.Json = False,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """Fetch a task's current state once (exit 1 if it failed or was cancelled)."""
    ui = Ui(quiet=quiet, json_mode=json_out, debug=debug)

    async def body() -> int:
        from get3w_cli.cli.flows import get_flow

        return await get_flow(_flags(provider, api_key, base_url, sandbox=sandbox), task_id, api.value if api else None, ui)

    run(ui, body)


@app.command("wait")
def wait_cmd(
    task_id: O.TaskId,
    timeout: O.Timeout = None,
    poll_max: O.PollMax = "10s",
    via: O.ViaOpt = None,
    on_timeout: O.OnTimeoutOpt = O.OnTimeout.detach,
    output: O.Output = None,
    json_out: O.Json = False,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """Wait for an already submitted task (polling) and print its outputs."""
    ui, tracker = Ui(quiet=quiet, json_mode=json_out, debug=debug), Tracker()

    async def body() -> int:
        from get3w_cli.cli.flows import wait_flow

        flags = _flags(provider, api_key, base_url, sandbox=sandbox, via=via, timeout=timeout)
        request = build_wait_request(flags, fallback_after=None, poll_max=poll_max, tunnel=O.TunnelKind.none,
                                     public_url=None, listen_host="127.0.0.1", listen_port=0,
                                     on_timeout=on_timeout, output=output)
        with ui.activity("polling"):
            return await wait_flow(flags, task_id, api.value if api else None, request, ui, tracker)

    run(ui, body, tracker=tracker)


@app.command("cancel")
def cancel_cmd(
    task_id: O.TaskId,
    delete_outputs: bool = O.typer.Option(False, "--delete-outputs", help="Also delete the outputs of a task that already finished (Get3W v3)."),
    json_out: O.Json = False,
    quiet: O.Quiet = False,
    debug: O.Debug = False,
    provider: O.Provider = None,
    api: O.Api = None,
    api_key: O.ApiKey = None,
    base_url: O.BaseUrl = None,
    sandbox: O.Sandbox = False,
) -> None:
    """Cancel (Get3W v3: delete) a task that has not finished."""
    ui = Ui(quiet=quiet, json_mode=json_out, debug=debug)

    async def body() -> int:
        from get3w_cli.cli.flows import cancel_flow

        return await cancel_flow(_flags(provider, api_key, base_url, sandbox=sandbox), task_id,
                                 api.value if api else None, ui, delete_outputs=delete_outputs)

    run(ui, body)

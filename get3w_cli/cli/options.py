"""Every option shared by several commands, declared once, in a few flag groups.

A command takes the groups it needs as keyword-only parameters, and ``@options`` turns their
fields into typer options (and back into the groups when the command runs):

    @commands.command("run")
    @options()
    def run_cmd(model: Model, *, route: RouteFlags, account: AccountFlags, inputs: InputFlags,
                wait: WaitFlags, output: OutputFlags, talk: TalkFlags, journal: JournalFlags) -> None:

Adding a wait option: one field in ``WaitFlags`` (its default is the "not given" value) and the
code that uses it (``resolve.wait_request``). Values here are what the user typed; ``resolve``
turns them, with the environment and the config file, into the core's requests.

A flag group is a ``FlagGroup``: frozen, keyword-built, declared like a dataclass (type checkers
read it as one), but built without the code generation ``@dataclass`` runs at import, which
costs every command's start-up ~0.6 ms a group.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, get_type_hints

import typer

from get3w_cli.names import Api, OnTimeout, Provider, ServiceChannel, TunnelKind, Via

# Help panels, as the README groups the options (cli/help_format.py renders them in plain text).
INPUT, WAIT, OUT, CONN = "Input options", "Wait options", "Output options", "Connection options"

Model = Annotated[str, typer.Argument(
    metavar="MODEL", help="Model: flux-dev, owner/name, provider/model/task, or abstrakt:<model>.", show_default=False)]
TaskId = Annotated[str, typer.Argument(metavar="ID", help="The task id (prediction / request / job id).",
                                       show_default=False)]


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls


@dataclass_transform(eq_default=False, kw_only_default=True, frozen_default=True)
class FlagGroup:
    """A group of options: each annotated class attribute is one, its value the default."""

    _names: ClassVar[tuple[str, ...]] = ()
    _hints: ClassVar[dict[str, Any]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._names = (*cls._names, *inspect.get_annotations(cls))

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self._names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {min(unknown)!r}")
        for name in self._names:
            object.__setattr__(self, name, values.get(name, getattr(type(self), name)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return cls._names

    @classmethod
    def hints(cls) -> dict[str, Any]:
        """Its options' annotations, evaluated (which builds their typer options) once a group."""
        if "_hints" not in cls.__dict__:
            cls._hints = get_type_hints(cls, include_extras=True)
        return cls._hints


def _opt(*names: str, help: str, panel: str, metavar: str | None = None, **extra: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, metavar=metavar, show_default=False, **extra)


class RouteFlags(FlagGroup):
    """Which provider and API a model or task id belongs to."""

    provider: Annotated[Provider | None, _opt(
        "--provider", help="Default: from the model name, $G3W_PROVIDER or config.",
        panel=CONN)] = None
    api: Annotated[Api | None, _opt(
        "--api", help="Get3W API (default: from the model name).", panel=CONN)] = None


class AccountFlags(FlagGroup):
    """How to reach the provider: key, base URL, or the in-process sandbox."""

    api_key: Annotated[str | None, _opt(
        "--api-key", help="API key (default $GET3W_API_KEY, $ABSTRAKT_API_KEY, config).", panel=CONN,
        metavar="KEY")] = None
    base_url: Annotated[str | None, _opt(
        "--base-url", help="Provider URL, no path (default $GET3W_BASE_URL, $ABSTRAKT_BASE_URL).", panel=CONN,
        metavar="URL")] = None
    sandbox: Annotated[bool, _opt(
        "--sandbox", help="Use an in-process stand-in provider: no key, no network.", panel=CONN)] = False


class JournalFlags(FlagGroup):
    no_history: Annotated[bool, _opt(
        "--no-history", help="Do not record tasks in the local journal.", panel=CONN)] = False


class InputFlags(FlagGroup):
    """The model's inputs (CONTRACT.md section 2, input options)."""

    prompt: Annotated[str | None, _opt("--prompt", "-p", help="The prompt (sets the input `prompt`; - reads stdin).",
                                       panel=INPUT, metavar="TEXT")] = None
    prompt_file: Annotated[str | None, _opt(
        "--prompt-file", help="Read the `prompt` input from FILE (- for stdin).", panel=INPUT, metavar="FILE")] = None
    param: Annotated[list[str] | None, _opt(
        "--param", "-i", help="An input: KEY=VALUE (JSON if it parses), KEY:=JSON, KEY=@FILE (uploaded). Repeatable.",
        panel=INPUT, metavar="KEY=VALUE")] = None
    input_file: Annotated[str | None, _opt(
        "--input", help="Inputs as a JSON object in FILE (- for stdin).", panel=INPUT, metavar="FILE")] = None
    channel: Annotated[ServiceChannel | None, _opt("--channel", help="Get3W v1's service tier.", panel=INPUT)] = None
    idempotency_key: Annotated[str | None, _opt(
        "--idempotency-key", help="Run again with the same KEY: reuse its journalled task, never pay twice "
        "(default G3W_IDEMPOTENCY_KEY).", panel=INPUT, metavar="KEY")] = None
    resubmit_unknown: Annotated[bool, _opt(
        "--resubmit-unknown", help="With --idempotency-key: submit again when the key's earlier submit got no "
        "answer (may pay twice).", panel=INPUT)] = False


class WaitFlags(FlagGroup):
    """How to wait (CONTRACT.md section 2, wait options); None means "not given"."""

    via: Annotated[Via | None, _opt(
        "--via", help="auto: webhook if reachable, else poll.",
        panel=WAIT)] = None
    timeout: Annotated[str | None, _opt(
        "--timeout", help="The whole wait: 90, 5m, 1h30m (default 30m).", panel=WAIT, metavar="DURATION")] = None
    fallback_after: Annotated[str | None, _opt(
        "--fallback-after", help="Poll if no callback by then (default 60s+).",
        panel=WAIT, metavar="DURATION")] = None
    poll_max: Annotated[str | None, _opt(
        "--poll-max", help="Longest pause between polls (default 10s).", panel=WAIT, metavar="DURATION")] = None
    tunnel: Annotated[TunnelKind, _opt(
        "--tunnel", help="auto: a running relay, else ngrok with an authtoken, else cloudflared.",
        panel=WAIT)] = TunnelKind.AUTO
    no_relay: Annotated[bool, _opt(
        "--no-relay", help="Do not borrow a running `g3w relay`.", panel=WAIT)] = False
    public_url: Annotated[str | None, _opt(
        "--public-url", help="Your proxy's URL for the listener.", panel=WAIT,
        metavar="URL")] = None
    listen_host: Annotated[str, _opt(
        "--listen-host", help="Listener's address (default 127.0.0.1).", panel=WAIT,
        metavar="HOST")] = "127.0.0.1"
    listen_port: Annotated[int, _opt(
        "--listen-port", help="Listener's port (default 0: any free one).", panel=WAIT,
        metavar="PORT")] = 0
    webhook_secret: Annotated[str | None, _opt(
        "--webhook-secret", help="Verify callbacks (env: *_WEBHOOK_SECRET).",
        panel=WAIT, metavar="SECRET")] = None
    on_timeout: Annotated[OnTimeout, _opt(
        "--on-timeout", help="On timeout or Ctrl-C: leave the task running (detach, default) or cancel it.",
        panel=WAIT)] = OnTimeout.DETACH


class OutputFlags(FlagGroup):
    output: Annotated[str | None, _opt(
        "--output", "-o", help="Download outputs into DIR as <id>_<index>.<ext>.", panel=OUT, metavar="DIR")] = None


class PreviewFlags(FlagGroup):
    """Looking at the result in the terminal (CONTRACT.md section 12); None means "not given"."""

    preview: Annotated[bool | None, _opt(
        "--preview/--no-preview", help="Draw image outputs in the terminal (default: config defaults.preview).",
        panel=OUT)] = None


class CiFlags(FlagGroup):
    """CI integrations (CONTRACT.md section 10): on by themselves under GitHub Actions / GitLab CI."""

    no_ci: Annotated[bool, _opt(
        "--no-ci", help="No GitHub Actions / GitLab CI integration (also G3W_CI=0).", panel=OUT)] = False
    dotenv: Annotated[str | None, _opt(
        "--dotenv", help="Also write the outputs (id, status, outputs...) to FILE as a dotenv report.", panel=OUT,
        metavar="FILE")] = None


class TalkFlags(FlagGroup):
    """What goes to stdout and stderr."""

    json_out: Annotated[bool, _opt(
        "--json", help="Print the task record as one JSON object on stdout.", panel=OUT)] = False
    quiet: Annotated[bool, _opt(
        "--quiet", "-q", help="No progress or messages on stderr (errors still show).", panel=OUT)] = False
    debug: Annotated[bool, _opt(
        "--debug", help="Show tracebacks and library logs (secrets masked).", panel=OUT)] = False


_F = TypeVar("_F", bound=Callable[..., Any])


def options(*, hide: tuple[str, ...] = (), help_overrides: dict[str, str] | None = None) -> Callable[[_F], _F]:
    """Expose the fields of the flag groups a command takes as its options.

    The command's own parameters (positional arguments included) stay as they are; each
    keyword-only parameter annotated with a flag group becomes that group's options, and the
    command receives the group as one ``FlagGroup``. ``hide``: fields this command does not
    offer (they keep their default); ``help_overrides``: a field's help for this command.
    """
    def wrap(command: _F) -> _F:
        hints = get_type_hints(command, include_extras=True)
        signature = inspect.signature(command)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
               if not _is_group(hints.get(p.name))]
        groups = {name: cls for name, cls in hints.items() if _is_group(cls)}
        params = own + [param for cls in groups.values() for param in _parameters(cls, hide, help_overrides or {})]

        @functools.wraps(command)
        def expanded(*args: Any, **kwargs: Any) -> Any:
            bound = {name: cls(**{field: kwargs.pop(field) for field in cls.names() if field in kwargs})
                     for name, cls in groups.items()}
            return command(*args, **kwargs, **bound)

        expanded.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        expanded.__annotations__ = {p.name: p.annotation for p in params}
        del expanded.__wrapped__  # typer must see the expanded signature, not the command's
        return expanded  # type: ignore[return-value]

    return wrap


def _is_group(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, FlagGroup)


def _parameters(cls: type[FlagGroup], hide: tuple[str, ...], help_overrides: dict[str, str]) -> list[inspect.Parameter]:
    hints = cls.hints()
    found = []
    for name in cls.names():
        if name in hide:
            continue
        annotation = hints[name]
        if name in help_overrides:
            info = copy.copy(annotation.__metadata__[0])
            info.help = help_overrides[name]
            annotation = Annotated[annotation.__origin__, info]
        found.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(cls, name),
                                       annotation=annotation))
    return found

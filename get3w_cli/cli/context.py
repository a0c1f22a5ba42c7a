"""What a command needs around its core call: settings, the HTTP session, the journal, the sandbox.

The only place that reads ``os.environ`` (and hands it to ``load_settings``).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from get3w_cli.errors import ConfigError

if TYPE_CHECKING:
    from get3w_cli.config import Settings
    from get3w_cli.http import ApiClient, HttpSession
    from get3w_cli.journal import Journal
    from get3w_cli.providers import Adapter, Route
    from get3w_cli.sandbox import Sandbox

SANDBOX_KEY = "sk_sandbox_local"
JOURNAL_FILE = "history.db"  # in the state dir (G3W_HOME)
KEY_ENV = {"get3w": "GET3W_API_KEY", "abstrakt": "ABSTRAKT_API_KEY"}


@dataclass(frozen=True)
class Flags:
    """Command-line values that feed settings; ``None`` means "not given"."""

    provider: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    via: str | None = None
    timeout: str | None = None
    no_history: bool = False
    sandbox: bool = False


def environ() -> dict[str, str]:
    return dict(os.environ)


def config_path() -> Path:
    from get3w_cli.config import default_config_path

    return default_config_path(environ())


def settings_from(flags: Flags, provider: str | None = None) -> Settings:
    """flag > environment > config file > default; key flags apply to ``provider``."""
    from get3w_cli.config import default_config_path, load_settings, read_config

    env = environ()
    target = provider or flags.provider
    values: dict[str, Any] = {"provider": flags.provider, "defaults.via": flags.via, "defaults.timeout": flags.timeout}
    for name in ("get3w", "abstrakt"):
        if target in (None, name):
            values[f"{name}.api_key"] = flags.api_key
            values[f"{name}.base_url"] = flags.base_url
            values[f"{name}.webhook_secret"] = flags.webhook_secret
    settings = load_settings(values, env, read_config(default_config_path(env)))
    register_secrets(settings)
    return settings


def register_secrets(settings: Settings) -> None:
    """Every secret the settings hold is masked in whatever g3w prints from now on."""
    from get3w_cli.redaction import register

    for provider in (settings.get3w, settings.abstrakt):
        register(provider.api_key)
        register(provider.webhook_secret)
    register(settings.ngrok_authtoken)


def open_journal(flags: Flags) -> Journal:
    from get3w_cli.config import default_state_dir
    from get3w_cli.journal import Journal

    if flags.no_history:
        return Journal(None)
    return Journal(default_state_dir(environ()) / JOURNAL_FILE)


@dataclass
class Services:
    """Per-command resources, opened together and closed together."""

    settings: Settings
    session: HttpSession
    journal: Journal
    sandbox: Sandbox | None = None
    sandbox_secret: str | None = field(default=None, repr=False)

    def base_url(self, provider: str) -> str:
        return self.sandbox.base_url if self.sandbox else self.settings.for_provider(provider).base_url

    def webhook_secret(self, provider: str) -> str | None:
        return self.sandbox_secret or self.settings.for_provider(provider).webhook_secret

    def client(self, provider: str, api: str, *, base_url: str | None = None,
               max_attempts: int | None = None) -> ApiClient:
        """The API client for a provider, with its key (checked here, before anything is sent)."""
        from get3w_cli.providers import error_parser

        key = SANDBOX_KEY if self.sandbox else self.settings.for_provider(provider).api_key
        if not key:
            raise ConfigError(
                f"no API key for {provider}",
                hint=f"set {KEY_ENV[provider]}, run `g3w config set {provider}.api_key ...`, "
                "pass --api-key, or try --sandbox",
            )
        return self.session.api(base_url or self.base_url(provider), key, errors=error_parser((provider, api)),
                                max_attempts=max_attempts)

    def adapter(self, route: Route) -> Adapter:
        from get3w_cli.providers import make_adapter

        return make_adapter(route, self.client(route.provider, route.api))


def many_requests_backend() -> str:
    """The HTTP backend of a command that sends many requests (batch): aiohttp's pool, which costs
    less CPU a request, unless a proxy is configured (only httpx's own pool honours ``*_PROXY``)."""
    from get3w_cli.http import AIOHTTP, HTTPCORE

    proxied = any(name.lower().endswith("_proxy") and name.lower() != "no_proxy" and value
                  for name, value in environ().items())
    return HTTPCORE if proxied else AIOHTTP


@asynccontextmanager
async def open_services(
    flags: Flags, *, provider: str | None = None, backend: str | None = None
) -> AsyncIterator[Services]:
    """Open the HTTP session, the journal and (with --sandbox) an in-process sandbox."""
    import secrets

    from get3w_cli.http import HTTPCORE, HttpSession
    from get3w_cli.redaction import register

    settings = settings_from(flags, provider)
    async with AsyncExitStack() as stack:
        journal = open_journal(flags)
        stack.callback(journal.close)
        sandbox, secret = None, None
        if flags.sandbox:
            from get3w_cli.config import default_state_dir
            from get3w_cli.sandbox import Sandbox, SandboxOptions

            secret = secrets.token_hex(16)
            register(secret)
            # Saved tasks let `g3w wait <id> --sandbox` find what an earlier submit made.
            state_file = default_state_dir(environ()) / "sandbox-state.json"
            options = SandboxOptions(webhook_secret=secret, state_file=state_file)
            sandbox = await stack.enter_async_context(Sandbox(options))
        session = await stack.enter_async_context(HttpSession(backend=backend or HTTPCORE))
        yield Services(settings=settings, session=session, journal=journal, sandbox=sandbox, sandbox_secret=secret)

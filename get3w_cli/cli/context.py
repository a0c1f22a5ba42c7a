"""What a command knows of its surroundings, read once: the environment, the config file, the
settings resolved from them and its flags; and the services its core call uses.

The only place that reads ``os.environ``. ``Context`` reads the config file at most once per
command and resolves settings (flag > environment > file > default) once per set of flags;
``open_services`` opens the HTTP session, the journal and (with --sandbox) the sandbox.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from get3w_cli.errors import ConfigError
from get3w_cli.names import FACTS, PROVIDERS, provider_named

if TYPE_CHECKING:
    from get3w_cli.config import Settings
    from get3w_cli.http import ApiClient, HttpSession, Retrying
    from get3w_cli.journal import Journal
    from get3w_cli.models_cache import ModelsCache
    from get3w_cli.providers import Adapter, Route
    from get3w_cli.sandbox import Sandbox
    from get3w_cli.webhooks.ngrok_agent import AgentSearch

SANDBOX_KEY = "sk_sandbox_local"
JOURNAL_FILE = "history.db"  # in the state dir (G3W_HOME)
SANDBOX_STATE_FILE = "sandbox-state.json"  # in the state dir: `submit --sandbox` then `wait --sandbox`


class Context:
    """One command's environment and config file (each read once), and the settings from them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self._file: dict[str, Any] | None = None
        self._settings: dict[tuple[str | None, ...], Settings] = {}

    def config_path(self) -> Path:
        from get3w_cli.config import default_config_path

        return default_config_path(self.env)

    def state_dir(self) -> Path:
        from get3w_cli.config import default_state_dir

        return default_state_dir(self.env)

    def file_values(self) -> dict[str, Any]:
        """The config file's settings (read on first use, then kept)."""
        if self._file is None:
            from get3w_cli.config import read_config

            self._file = read_config(self.config_path())
        return self._file

    def settings(self, *, provider: str | None = None, api_key: str | None = None, base_url: str | None = None,
                 webhook_secret: str | None = None, via: str | None = None, timeout: str | None = None,
                 output: str | None = None) -> Settings:
        """flag > environment > config file > default, from the flags' values (None: not given).

        ``api_key``, ``base_url`` and ``webhook_secret`` apply to ``provider``, else to every provider.
        """
        flags = (provider, api_key, base_url, webhook_secret, via, timeout, output)
        if flags not in self._settings:
            self._settings[flags] = self._load(*flags)
        return self._settings[flags]

    def _load(self, provider: str | None, api_key: str | None, base_url: str | None, webhook_secret: str | None,
              via: str | None, timeout: str | None, output: str | None) -> Settings:
        from get3w_cli.config import load_settings
        from get3w_cli.redaction import register

        values: dict[str, Any] = {"provider": provider, "defaults.via": via, "defaults.timeout": timeout,
                                  "defaults.output": output}
        for name in PROVIDERS:
            if provider in (None, name):
                values.update({f"{name}.api_key": api_key, f"{name}.base_url": base_url,
                               f"{name}.webhook_secret": webhook_secret})
        settings = load_settings(values, self.env, self.file_values())
        for each in (settings.get3w, settings.abstrakt):  # masked in whatever g3w prints from now on
            register(each.api_key)
            register(each.webhook_secret)
        register(settings.ngrok_authtoken)
        return settings

    def journal(self, *, no_history: bool = False) -> Journal:
        from get3w_cli.journal import Journal

        return Journal(None if no_history else self.state_dir() / JOURNAL_FILE)

    def made_by_sandbox(self, task_id: str) -> bool:
        """Whether an in-process sandbox (``--sandbox``) made this task: its state file holds it.

        Read here, as JSON, not through ``get3w_cli.sandbox`` (aiohttp): get, wait and cancel
        start fast. The file is ``{"tasks": [{"id": ...}, ...]}`` (sandbox/persist.py)."""
        import json

        try:
            saved = json.loads((self.state_dir() / SANDBOX_STATE_FILE).read_text(encoding="utf-8"))
            return any(isinstance(t, dict) and t.get("id") == task_id for t in saved.get("tasks", []))
        except (OSError, ValueError, AttributeError):
            return False  # no sandbox ever ran here, or its file is unreadable: not a sandbox task

    def ngrok_path(self) -> str | None:
        return self.env.get("NGROK_PATH") or None

    def ngrok_search(self, settings: Settings) -> AgentSearch:
        """Where the ngrok agent may be (NGROK_PATH, PATH, pyngrok's default location), and whether
        pyngrok may install it there (G3W_NGROK_INSTALL / ngrok.install)."""
        from get3w_cli.webhooks.ngrok_agent import AgentSearch, default_install_path

        return AgentSearch(ngrok_path=self.ngrok_path(), search_path=self.env.get("PATH", ""),
                           install_to=default_install_path(self.env), install=settings.ngrok_install)

    def cloudflared_path(self) -> str | None:
        return self.env.get("CLOUDFLARED_PATH") or None

    def http_backend(self, *, many_requests: bool = False) -> str:
        """The HTTP backend: httpx's own pool as httpx configures it when a proxy is set (only it
        honours ``*_PROXY``), else aiohttp's pool for a command that sends many requests (less CPU
        a request), else httpx's pool with its TLS context built only if https is used."""
        from get3w_cli.http import AIOHTTP, HTTPCORE, PROXIED

        proxied = any(name.lower().endswith("_proxy") and name.lower() != "no_proxy" and value
                      for name, value in self.env.items())
        return PROXIED if proxied else AIOHTTP if many_requests else HTTPCORE


@dataclass(frozen=True)
class Access:
    """How a command reaches the providers and the journal, resolved."""

    settings: Settings
    backend: str  # http.HTTPCORE, PROXIED or AIOHTTP (Context.http_backend)
    sandbox: bool = False
    no_history: bool = False


@dataclass
class Services:
    """Per-command resources, opened together and closed together (the core's ``Connections``)."""

    settings: Settings
    session: HttpSession
    journal: Journal
    sandbox: Sandbox | None = None
    sandbox_secret: str | None = field(default=None, repr=False)
    # Where model lists are cached (G3W_HOME); None for an in-process sandbox (a new base URL each run).
    models_dir: Path | None = None

    @property
    def models_cache(self) -> ModelsCache | None:
        if self.models_dir is None:
            return None
        from get3w_cli.models_cache import ModelsCache  # only the commands that look at models

        return ModelsCache(self.models_dir)

    def base_url(self, provider: str) -> str:
        return self.sandbox.base_url if self.sandbox else self.settings.for_provider(provider).base_url

    def webhook_secret(self, provider: str) -> str | None:
        return self.sandbox_secret or self.settings.for_provider(provider).webhook_secret

    def client(self, provider: str, api: str, *, base_url: str | None = None,
               max_attempts: int | None = None, post_headers: Mapping[str, str] | None = None) -> ApiClient:
        """The API client for a provider, with its key (checked here, before anything is sent)."""
        from get3w_cli.providers import error_parser

        key = SANDBOX_KEY if self.sandbox else self.settings.for_provider(provider).api_key
        if not key:
            known = provider_named(provider)
            env = FACTS[known].key_env if known else "the provider's key variable"
            raise ConfigError(f"no API key for {provider}",
                              hint=f"set {env}, run `g3w config set {provider}.api_key ...`, pass --api-key, "
                                   "or try --sandbox")
        return self.session.api(base_url or self.base_url(provider), key, errors=error_parser((provider, api)),
                                max_attempts=max_attempts, provider=provider, post_headers=post_headers)

    def adapter(self, route: Route, *, post_headers: Mapping[str, str] | None = None) -> Adapter:
        from get3w_cli.providers import make_adapter

        return make_adapter(route, self.client(route.provider, route.api, post_headers=post_headers))


@asynccontextmanager
async def open_services(ctx: Context, access: Access, *, on_retry: Callable[[Retrying], None] | None = None
                        ) -> AsyncIterator[Services]:
    """Open the HTTP session, the journal and (with --sandbox) an in-process sandbox; ``on_retry``
    hears of each HTTP retry (the spinner says it)."""
    from get3w_cli.http import HttpSession

    async with AsyncExitStack() as stack:
        journal = ctx.journal(no_history=access.no_history)
        stack.callback(journal.close)
        sandbox, secret = None, None
        if access.sandbox:
            sandbox, secret = await _start_sandbox(stack, ctx)
        session = await stack.enter_async_context(HttpSession(backend=access.backend, on_retry=on_retry))
        yield Services(settings=access.settings, session=session, journal=journal, sandbox=sandbox,
                       sandbox_secret=secret, models_dir=None if access.sandbox else ctx.state_dir())


async def _start_sandbox(stack: AsyncExitStack, ctx: Context) -> tuple[Sandbox, str]:
    import secrets

    from get3w_cli.redaction import register
    from get3w_cli.sandbox import Sandbox, SandboxOptions

    secret = secrets.token_hex(16)
    register(secret)
    # Saved tasks let `g3w wait <id> --sandbox` find what an earlier submit made.
    options = SandboxOptions(webhook_secret=secret, state_file=ctx.state_dir() / SANDBOX_STATE_FILE)
    return await stack.enter_async_context(Sandbox(options)), secret

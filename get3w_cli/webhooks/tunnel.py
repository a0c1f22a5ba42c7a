"""A public URL for the local listener through an ngrok agent, driven by pyngrok.

The only module that imports pyngrok. pyngrok blocks, so its calls run in threads; its
errors become ``TunnelError`` with a ``kind`` (no_authtoken, binary_missing, session_limit,
auth_failed, start_timeout, other) and a hint. The agent gets a private config file holding
the authtoken (ngrok_config.py), so the user's own ngrok.yml is never read or written. ngrok
is never downloaded: a missing binary is reported, not fetched. One tunnel per ngrok binary
at a time (pyngrok keeps one agent process per binary path).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

from pyngrok import conf, ngrok, process
from pyngrok.conf import PyngrokConfig
from pyngrok.exception import (
    PyngrokError,
    PyngrokNgrokError,
    PyngrokNgrokInstallError,
    PyngrokSecurityError,
)

from get3w_cli.constants import (
    TUNNEL_API_TIMEOUT,
    TUNNEL_KILL_POLL,
    TUNNEL_START_TIMEOUT,
    TUNNEL_STARTUP_MARGIN,
)
from get3w_cli.errors import TunnelError, plain_reason
from get3w_cli.webhooks.ngrok_config import make_private_config, remove_stale_configs

_FALLBACK = "or use --public-url URL, or --via poll"
_TOKEN_PAGE = "https://dashboard.ngrok.com/get-started/your-authtoken"  # noqa: S105 - not a secret: a fixed test value or a URL
HINTS = {
    "no_authtoken": f"set NGROK_AUTHTOKEN or run `g3w config set ngrok.authtoken <token>` ({_TOKEN_PAGE}); {_FALLBACK}",
    "binary_missing": "install ngrok (https://ngrok.com/download) or set NGROK_PATH to the ngrok executable; "
                      f"{_FALLBACK}",
    "session_limit": "another ngrok agent session is running on this account (ERR_NGROK_108): stop it, "
    "or pass its URL with --public-url, or use --via poll",
    "auth_failed": f"ngrok rejected the authtoken: check NGROK_AUTHTOKEN / ngrok.authtoken ({_TOKEN_PAGE}); "
                   f"{_FALLBACK}",
    "start_timeout": f"ngrok did not come up in time: check the network; {_FALLBACK}",
    "other": f"run with --debug to see ngrok's log; {_FALLBACK}",
}
SESSION_LIMIT_CODES = frozenset({"ERR_NGROK_108"})
AUTH_FAILED_CODES = frozenset({"ERR_NGROK_105", "ERR_NGROK_106", "ERR_NGROK_107", "ERR_NGROK_4018"})
_CODE = re.compile(r"ERR_NGROK_\d+")
# The agent's log lines after startup (pyngrok logs the startup ones as "pyngrok.process.ngrok").
agent_log = logging.getLogger("g3w.webhooks.ngrok")
_PYNGROK_LOGGERS = ("pyngrok.process.ngrok", "pyngrok.process", "pyngrok.ngrok")


@dataclass
class Tunnel:
    """An open tunnel to a local port; ``close()`` stops the agent and removes its config."""

    public_url: str
    _config: PyngrokConfig | None = field(default=None, repr=False)
    _tmpdir: str | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    async def close(self) -> None:
        """Disconnect and kill the ngrok agent (idempotent, never raises)."""
        if self._closed:
            return
        self._closed = True
        with suppress(Exception):
            await asyncio.to_thread(_shutdown, self._config, self.public_url, self._tmpdir)

    async def __aenter__(self) -> Tunnel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_ngrok(
    port: int,
    *,
    authtoken: str | None,
    ngrok_path: str | None = None,
    config_path: str | None = None,
    timeout: float = TUNNEL_START_TIMEOUT,
    temp_dir: str | None = None,
) -> Tunnel:
    """Start an ngrok agent forwarding a public URL to ``127.0.0.1:port``.

    ``config_path`` names an existing ngrok config to use as is (never written to); by
    default a private one is made in ``temp_dir`` (default: the system's), after removing
    those that killed g3w processes left there. Close the returned tunnel on every path.

    Raises:
        TunnelError: with ``kind`` telling why (see the module docstring).
    """
    if not authtoken:
        raise TunnelError("no ngrok authtoken is set", kind="no_authtoken", hint=HINTS["no_authtoken"])
    path = resolve_ngrok_path(ngrok_path)
    if process.is_process_running(path):
        raise TunnelError("an ngrok tunnel is already open in this process", kind="other", hint=HINTS["other"])
    tmpdir = None
    try:
        if config_path is None:
            await asyncio.to_thread(remove_stale_configs, temp_dir)
            tmpdir, config_path = make_private_config(authtoken, temp_dir)
        config = _pyngrok_config(path, config_path, None if tmpdir else authtoken, timeout)
        with _redacting(authtoken):
            public_url = await _start(config, port, timeout, authtoken)
    except BaseException as exc:
        await asyncio.to_thread(_shutdown, None, None, tmpdir)
        if isinstance(exc, TunnelError) or not isinstance(exc, Exception):
            raise
        raise classify(exc, authtoken, ngrok_path=path) from exc
    return Tunnel(public_url, config, tmpdir)


def resolve_ngrok_path(ngrok_path: str | None) -> str:
    """Return the ngrok to run: ``ngrok_path``, else ``ngrok`` on PATH, else pyngrok's location.

    Raises:
        TunnelError: kind "binary_missing", when there is no such file.
    """
    candidate = ngrok_path or shutil.which("ngrok") or conf.DEFAULT_NGROK_PATH
    if not os.path.isfile(candidate):
        where = f"at {candidate}" if ngrok_path else f"(not on PATH, nor at {candidate})"
        raise TunnelError(f"ngrok is not installed {where}", kind="binary_missing", hint=HINTS["binary_missing"])
    return candidate


def _pyngrok_config(ngrok_path: str, config_path: str, authtoken: str | None, timeout: float) -> PyngrokConfig:
    config = PyngrokConfig(
        ngrok_path=ngrok_path,
        config_path=config_path,
        auth_token=authtoken,
        monitor_thread=False,  # _drain() reads the agent's output instead, and closes the pipe
        startup_timeout=math.ceil(timeout + TUNNEL_STARTUP_MARGIN),
        request_timeout=TUNNEL_API_TIMEOUT,
    )
    # PyngrokConfig falls back to NGROK_AUTHTOKEN from the environment; the caller decides.
    config.auth_token = authtoken
    return config


def _connect(config: PyngrokConfig, port: int, authtoken: str) -> str:
    name = f"g3w-{port}-{uuid.uuid4().hex[:8]}"
    tunnel = ngrok.connect(f"http://127.0.0.1:{port}", name=name, pyngrok_config=config)
    stdout = ngrok.get_ngrok_process(config).proc.stdout
    if stdout is not None:
        # ngrok logs a line per request; pyngrok reads its output only while starting, and a
        # full pipe would block the agent.
        threading.Thread(target=_drain, args=(stdout, authtoken), daemon=True, name="g3w-ngrok-log").start()
    if not tunnel.public_url:
        raise PyngrokError("ngrok returned no public URL")
    return tunnel.public_url


def _drain(stream: IO[str], authtoken: str) -> None:
    try:
        for line in stream:
            agent_log.debug("%s", _clean(line, authtoken))
    except (OSError, ValueError):
        pass
    finally:
        with suppress(OSError, ValueError):
            stream.close()


async def _start(config: PyngrokConfig, port: int, timeout: float, authtoken: str) -> str:
    work = asyncio.ensure_future(asyncio.to_thread(_connect, config, port, authtoken))
    try:
        await asyncio.wait({work}, timeout=timeout)
    except BaseException:
        await _abandon(work, config)
        raise
    timed_out = not work.done()
    if not timed_out and work.exception() is None:
        return work.result()
    await _abandon(work, config)  # also when the agent started but the endpoint failed
    if timed_out:
        raise TunnelError(
            f"ngrok did not start within {timeout:g}s", kind="start_timeout", hint=HINTS["start_timeout"]
        )
    raise work.exception()  # type: ignore[misc]


async def _abandon(work: asyncio.Future[str], config: PyngrokConfig) -> None:
    """Stop a start in progress, and wait until its thread has let go of the agent."""
    agent = None
    while not work.done():
        # pyngrok's kill_process() needs the lock its starting thread holds, and that thread
        # may be blocked reading the agent's output: killing the child ends that read.
        agent = process._current_processes.get(config.ngrok_path) or agent  # noqa: SLF001
        if agent is not None:
            with suppress(OSError):
                agent.proc.kill()
        await asyncio.wait({work}, timeout=TUNNEL_KILL_POLL)
    if not work.cancelled():
        work.exception()  # retrieved: the outcome no longer matters
    await asyncio.to_thread(_kill_agent, config.ngrok_path)
    if agent is not None and agent.proc.stdout is not None:
        with suppress(OSError, ValueError):
            agent.proc.stdout.close()


def _shutdown(config: PyngrokConfig | None, public_url: str | None, tmpdir: str | None) -> None:
    if config is not None:
        if public_url:
            with suppress(Exception):
                ngrok.disconnect(public_url, pyngrok_config=config)
        _kill_agent(config.ngrok_path)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _kill_agent(ngrok_path: str) -> None:
    with suppress(Exception):
        process.kill_process(ngrok_path)


def classify(exc: BaseException, authtoken: str | None = None, *, ngrok_path: str | None = None) -> TunnelError:
    """Translate a pyngrok (or process) failure into a ``TunnelError`` with its kind."""
    text = _clean(_describe(exc), authtoken)
    codes = set(_CODE.findall(text))
    if isinstance(exc, PyngrokNgrokInstallError) or "binary was not found" in text:
        kind = "binary_missing"
    elif isinstance(exc, OSError) and ngrok_path and exc.filename == ngrok_path:
        kind, text = "binary_missing", f"cannot run ngrok: {plain_reason(exc)}"  # exists, but not executable
    elif codes & SESSION_LIMIT_CODES:
        kind = "session_limit"
    elif codes & AUTH_FAILED_CODES:
        kind = "auth_failed"
    else:
        kind = "other"
    if isinstance(exc, PyngrokSecurityError):
        kind = "other"
    return TunnelError(f"ngrok failed: {text}", kind=kind, hint=HINTS[kind])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PyngrokNgrokError) and exc.ngrok_error:
        return exc.ngrok_error  # the agent's own words, with its ERR_NGROK_ code
    if isinstance(exc, PyngrokNgrokError):
        errors = [log.err for log in exc.ngrok_logs if log.err and log.err != "nil"]
        return " ".join([str(exc).rstrip("."), *errors[-1:]])
    return plain_reason(exc)


def _clean(text: str, secret: str | None) -> str:
    """One line of text, without the secret (ngrok echoes a rejected authtoken)."""
    text = " ".join(text.replace("\\n", " ").split())
    return text.replace(secret, "***") if secret else text


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


@contextmanager
def _redacting(secret: str) -> Iterator[None]:
    """Keep ``secret`` out of what pyngrok logs meanwhile (logger filters do not inherit)."""
    redact = _Redact(secret)
    loggers = [logging.getLogger(name) for name in _PYNGROK_LOGGERS]
    for each in loggers:
        each.addFilter(redact)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(redact)

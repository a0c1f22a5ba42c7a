"""A public URL for the local listener through an ngrok agent, driven by pyngrok.

The only module that imports pyngrok. It finds the agent (ngrok_agent.py: never pyngrok's own
console script), lets pyngrok install it when it is missing (unless told not to), speaks to it the
API its release has (pyngrok's ``config_version``: /api/tunnels before 3.30, /api/endpoints from
3.30), and gives it a private config holding the authtoken (ngrok_config.py), so the user's own
ngrok.yml is never read or written. Failures become ``TunnelError`` with a kind, a hint and the
agent's own words (ngrok_errors.py). pyngrok blocks, so its calls run in threads.

An open tunnel keeps reading the agent's log: when the agent says its session closed or failed to
reconnect, or the agent exits, ``Tunnel.dropped`` is set (the waiter then stops counting on
callbacks). One tunnel per agent binary at a time (pyngrok keeps one agent process per path).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import threading
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

from pyngrok import __version__ as PYNGROK_VERSION
from pyngrok import conf, installer, ngrok, process
from pyngrok.conf import PyngrokConfig
from pyngrok.exception import PyngrokError, PyngrokNgrokError, PyngrokNgrokHTTPError, PyngrokSecurityError
from pyngrok.log import NgrokLog

from get3w_cli.constants import TUNNEL_API_TIMEOUT, TUNNEL_KILL_POLL, TUNNEL_START_TIMEOUT, TUNNEL_STARTUP_MARGIN
from get3w_cli.errors import TunnelError, plain_reason
from get3w_cli.webhooks.ngrok_agent import Agent, AgentSearch, check_drivable, find_agent, install_agent
from get3w_cli.webhooks.ngrok_config import make_private_config, remove_stale_configs
from get3w_cli.webhooks.ngrok_errors import HINTS, classified, clean, tunnel_error
from get3w_cli.webhooks.ngrok_log import DropWatch, drop_reason, redacting

__all__ = ["HINTS", "Tunnel", "classify", "open_ngrok", "resolve_agent"]
Notify = Callable[[str, str], None]
# The agent's log lines after startup (pyngrok logs the startup ones as "pyngrok.process.ngrok").
agent_log = logging.getLogger("g3w.webhooks.ngrok")


@dataclass
class Tunnel:
    """An open tunnel to a local port; ``close()`` stops the agent and removes its config.

    ``dropped`` is set when the agent loses its session or exits while the tunnel is open
    (``drop_reason`` says how, in the agent's words); never by ``close()``.
    """

    public_url: str
    agent: Agent | None = None
    _watch: DropWatch = field(default_factory=DropWatch, repr=False)
    _config: PyngrokConfig | None = field(default=None, repr=False)
    _tmpdir: str | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def dropped(self) -> asyncio.Event:
        return self._watch.event

    @property
    def drop_reason(self) -> str | None:
        return self._watch.reason

    async def close(self) -> None:
        """Disconnect and kill the ngrok agent (idempotent, never raises)."""
        if self._closed:
            return
        self._closed = True
        self._watch.closing = True
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
    search: AgentSearch | None = None,
    notify: Notify | None = None,
    config_path: str | None = None,
    timeout: float = TUNNEL_START_TIMEOUT,
    temp_dir: str | None = None,
) -> Tunnel:
    """Start an ngrok agent forwarding a public URL to ``127.0.0.1:port``.

    ``search`` says where the agent may be and whether pyngrok may install it (``ngrok_path``:
    NGROK_PATH, when ``search`` is not given); ``notify(kind, text)`` hears of an install.
    ``config_path`` names an existing ngrok config to use as is (never written to); by default a
    private one is made in ``temp_dir`` (default: the system's), after removing those that killed
    g3w processes left there. Close the returned tunnel on every path.

    Raises:
        TunnelError: with ``kind`` telling why (see ngrok_errors.HINTS).
    """
    if not authtoken:
        raise tunnel_error("no_authtoken", "no ngrok authtoken is set")
    agent = await resolve_agent(search or AgentSearch(ngrok_path=ngrok_path), notify or _silent)
    if process.is_process_running(agent.path):
        raise tunnel_error("other", "an ngrok tunnel is already open in this process")
    watch = DropWatch(asyncio.get_running_loop())
    tmpdir = None
    try:
        if config_path is None:
            await asyncio.to_thread(remove_stale_configs, temp_dir)
            tmpdir, config_path = make_private_config(authtoken, temp_dir, agent.config_version)
        config = _pyngrok_config(agent, config_path, None if tmpdir else authtoken, timeout)
        with redacting(authtoken):
            public_url = await _start(config, port, timeout, authtoken, watch)
    except BaseException as exc:
        await asyncio.to_thread(_shutdown, None, None, tmpdir)
        if isinstance(exc, TunnelError) or not isinstance(exc, Exception):
            raise
        raise classify(exc, authtoken, ngrok_path=agent.path) from exc
    return Tunnel(public_url, agent, watch, config, tmpdir)


def _silent(kind: str, text: str) -> None:
    pass


async def resolve_agent(search: AgentSearch, notify: Notify) -> Agent:
    """The agent to run (installed by pyngrok at its default location when missing and allowed),
    checked to be one the installed pyngrok drives.

    Raises:
        TunnelError: binary_missing, not_agent, install_failed, agent_too_old, pyngrok_unsupported.
    """
    target = search.install_to or conf.get_default().ngrok_path
    lookup = await asyncio.to_thread(find_agent, search, target)
    agent = lookup.agent
    if agent is None:
        passed = f"; passed over {', '.join(lookup.skipped)}" if lookup.skipped else ""
        if not search.install:
            raise tunnel_error("binary_missing", f"the ngrok agent is not on PATH nor at {target}{passed}, and "
                               "installing it is off (G3W_NGROK_INSTALL=0 or ngrok.install = false)")
        try:
            url = installer.get_ngrok_cdn_url("3")  # pyngrok's source, read from its table on each call
        except PyngrokError as exc:
            raise tunnel_error("install_failed", f"pyngrok cannot install ngrok here: {clean(str(exc))}") from exc
        notify("phase", f"installing the ngrok agent to {target}")
        agent = await install_agent(url, target)
        notify("note", f"pyngrok installed the ngrok agent {agent.version_text} to {target} (not on PATH{passed}); "
                       "G3W_NGROK_INSTALL=0 turns this off")
    check_drivable(agent, PYNGROK_VERSION)
    return agent


def _pyngrok_config(agent: Agent, config_path: str, authtoken: str | None, timeout: float) -> PyngrokConfig:
    config = PyngrokConfig(
        ngrok_path=agent.path,
        config_path=config_path,
        auth_token=authtoken,
        monitor_thread=False,  # _drain() reads the agent's output instead, and closes the pipe
        startup_timeout=math.ceil(timeout + TUNNEL_STARTUP_MARGIN),
        request_timeout=TUNNEL_API_TIMEOUT,
        # pyngrok's "3" speaks /api/endpoints (agents from 3.30), its "2" /api/tunnels (every agent 3.x).
        config_version="3" if agent.api == "/api/endpoints" else "2",
    )
    # PyngrokConfig falls back to NGROK_AUTHTOKEN from the environment; the caller decides.
    config.auth_token = authtoken
    return config


def _connect(config: PyngrokConfig, port: int, authtoken: str, watch: DropWatch) -> str:
    name = f"g3w-{port}-{uuid.uuid4().hex[:8]}"
    tunnel = ngrok.connect(f"http://127.0.0.1:{port}", name=name, pyngrok_config=config)
    stdout = ngrok.get_ngrok_process(config).proc.stdout
    if stdout is not None:
        # ngrok logs a line per request; pyngrok reads its output only while starting, and a
        # full pipe would block the agent.
        threading.Thread(target=_drain, args=(stdout, authtoken, watch), daemon=True, name="g3w-ngrok-log").start()
    if not tunnel.public_url:
        raise PyngrokError("ngrok returned no public URL")
    return tunnel.public_url


def _drain(stream: IO[str], authtoken: str, watch: DropWatch) -> None:
    try:
        for line in stream:
            agent_log.debug("%s", clean(line, authtoken))
            reason = drop_reason(NgrokLog(line))
            if reason:
                watch.report(clean(reason, authtoken))
    except (OSError, ValueError):
        pass
    finally:
        watch.report("the ngrok agent exited")
        with suppress(OSError, ValueError):
            stream.close()


async def _start(config: PyngrokConfig, port: int, timeout: float, authtoken: str, watch: DropWatch) -> str:
    errors: list[str] = []  # the agent's errors while it starts (appended from pyngrok's thread)
    config.log_event_callback = lambda log: errors.append(_said(log)) if log.lvl in ("ERROR", "CRITICAL") else None
    work = asyncio.ensure_future(asyncio.to_thread(_connect, config, port, authtoken, watch))
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
        said = errors[-1] if errors else ""
        # An agent that cannot reach ngrok logs why every second, and never exits: its words are the reason.
        raise classified(f"ngrok did not connect within {timeout:g}s", said, authtoken, default="start_timeout")
    raise work.exception()  # type: ignore[misc]  # done and failed: exception() is not None


def _said(log: NgrokLog) -> str:
    """An error line as the agent means it: what failed, and why."""
    return f"{log.msg}: {log.err}" if log.err and log.err != "nil" else log.msg or log.line


async def _abandon(work: asyncio.Future[str], config: PyngrokConfig) -> None:
    """Stop a start in progress, and wait until its thread has let go of the agent."""
    agent = None
    while not work.done():
        # pyngrok's kill_process() needs the lock its starting thread holds, and that thread
        # may be blocked reading the agent's output: killing the child ends that read.
        agent = process._current_processes.get(config.ngrok_path) or agent  # noqa: SLF001 - no public handle
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
    """Translate a pyngrok (or process) failure into a ``TunnelError``: its kind from ngrok's error
    code, the agent's own words in one line."""
    if isinstance(exc, OSError) and ngrok_path and exc.filename == ngrok_path:
        return tunnel_error("binary_missing", f"cannot run ngrok at {ngrok_path}: {exc.strerror or exc}")
    if isinstance(exc, PyngrokSecurityError):
        return tunnel_error("other", f"ngrok failed: {clean(str(exc), authtoken)}")
    return classified("ngrok failed", _describe(exc), authtoken, default="other", agent=ngrok_path)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PyngrokNgrokHTTPError):  # the agent API's answer: {"msg", "details": {"err"}}
        with suppress(ValueError, TypeError, AttributeError):
            body = json.loads(exc.body)
            details = body.get("details") or {}
            return " ".join(str(part) for part in (body.get("msg"), details.get("err")) if part)
        return str(exc)
    if isinstance(exc, PyngrokNgrokError) and exc.ngrok_error:
        return exc.ngrok_error  # the agent's own words, with its ERR_NGROK_ code
    if isinstance(exc, PyngrokNgrokError):
        errors = [log.err for log in exc.ngrok_logs if log.err and log.err != "nil"]
        return " ".join([str(exc).rstrip("."), *errors[-1:]])
    return plain_reason(exc)

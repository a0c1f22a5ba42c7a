"""The sandbox server: builds the aiohttp app and runs it on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from get3w_cli.constants import SANDBOX_MAX_BODY_BYTES, SANDBOX_SHUTDOWN_TIMEOUT
from get3w_cli.errors import ListenerError
from get3w_cli.sandbox import (
    cdn,
    control,
    routes_abstrakt,
    routes_account,
    routes_get3w,
)
from get3w_cli.sandbox.common import RUNTIME, is_submit
from get3w_cli.sandbox.control import Injection
from get3w_cli.sandbox.logs import DeliveryAttempt, LoggedRequest
from get3w_cli.sandbox.options import SandboxOptions
from get3w_cli.sandbox.persist import StateFile
from get3w_cli.sandbox.runtime import Runtime


def build_app(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[control.control_middleware],
                          client_max_size=SANDBOX_MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    control.add_routes(app)
    # Abstrakt's /v1/models and /v1/jobs before Get3W v1's catch-all /v1/{provider}/{model}/{task}.
    routes_abstrakt.add_routes(app)
    routes_account.add_routes(app)
    routes_get3w.add_routes(app)
    cdn.add_routes(app)
    return app


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - compares with the wildcard address, binds nothing
        return "127.0.0.1"  # a wildcard bind is reached through loopback from this machine
    return f"[{host}]" if ":" in host else host


class Sandbox:
    """A local stand-in for Get3W v1, Get3W v3 and Abstrakt on one port (see the package doc)."""

    def __init__(self, options: SandboxOptions | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._runtime = Runtime(options if options is not None else SandboxOptions())
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closed = False

    @property
    def options(self) -> SandboxOptions:
        return self._runtime.options

    @options.setter
    def options(self, value: SandboxOptions) -> None:
        self._runtime.options = value

    @property
    def base_url(self) -> str:
        if not self._runtime.base_url:
            raise RuntimeError("the sandbox has not been started")
        return self._runtime.base_url

    @property
    def requests(self) -> list[LoggedRequest]:
        return self._runtime.requests

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        return self._runtime.deliveries

    def submissions(self) -> list[LoggedRequest]:
        """The logged task-submit POSTs of all three APIs (answered or not)."""
        return [r for r in self._runtime.requests if is_submit(r.method, r.path)]

    def inject(self, *, status: int, count: int = 1, method: str | None = None,
               path_prefix: str | None = None, retry_after: float | None = None,
               body: bytes | None = None, drop_connection: bool = False) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead (see control)."""
        self._runtime.injections.append(Injection(
            status=status, count=count, method=method, path_prefix=path_prefix,
            retry_after=retry_after, body=body, drop_connection=drop_connection,
        ))

    def expire_outputs(self, task_id: str | None = None) -> int:
        """Expire the output URLs handed out so far (every task's, or one's): they answer 403 and
        the task's next GET lists fresh ones. Returns how many tasks were touched."""
        return self._runtime.store.expire_urls(task_id)

    async def start(self) -> None:
        """Bind and serve (with ``options.state_file``, first adopting the tasks saved there);
        raises ListenerError when the address cannot be bound."""
        if self._runner is not None:
            return
        runner = web.AppRunner(build_app(self._runtime), access_log=None,
                               shutdown_timeout=SANDBOX_SHUTDOWN_TIMEOUT)
        await runner.setup()
        await self._runtime.deliverer.open()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            await self._runtime.deliverer.close()
            raise ListenerError(
                f"the sandbox could not listen on {self._host}:{self._port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._runner = runner
        path = self._runtime.options.state_file
        if path is not None:
            self._runtime.state_file = StateFile(path, self._runtime.store)
            self._runtime.state_file.load()
        port = runner.addresses[0][1]
        self._runtime.base_url = f"http://{_url_host(self._host)}:{port}"

    async def close(self) -> None:
        """Stop serving and cancel pending webhook deliveries (saving the state file, if any);
        safe to call twice."""
        if self._closed or self._runner is None:
            return
        self._closed = True
        if self._runtime.state_file is not None:
            self._runtime.state_file.flush()
        self._runtime.store.close()  # wakes sync waiters so handlers finish quickly
        await self._runtime.deliverer.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


async def serve(options: SandboxOptions, *, host: str, port: int,
                on_ready: Callable[[str], None] | None = None) -> None:
    """Run a sandbox until cancelled; ``on_ready`` gets its base URL once it listens."""
    async with Sandbox(options, host=host, port=port) as sandbox:
        if on_ready is not None:
            on_ready(sandbox.base_url)
        await asyncio.Event().wait()

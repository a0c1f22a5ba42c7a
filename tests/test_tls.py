"""The TLS context is built only when an https URL is asked for, and then it verifies."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from get3w_cli.errors import NetworkError
from get3w_cli.http import HttpSession
from get3w_cli.http.lazy_tls import tls_context


async def _serve(ssl_context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def errors(status: int, body: object, text: str) -> tuple[str | None, str, float | None]:
    return None, "", None


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
def test_http_needs_no_tls_context_and_https_verifies(tmp_path: Path) -> None:
    """An http request builds no TLS context (it costs ~40 ms of start-up); an https one builds it,
    and it verifies: a self-signed certificate is refused."""
    tls_context.cache_clear()

    async def main() -> None:
        plain, plain_port = await _serve(None)
        secure, secure_port = await _serve(_self_signed(tmp_path))
        try:
            async with HttpSession(max_attempts=1) as http:
                reply = await http.api(f"http://127.0.0.1:{plain_port}", None, errors=errors).get("/hello")
                assert reply.body == {"ok": True}
                assert tls_context.cache_info().currsize == 0
                with pytest.raises(NetworkError, match=r"(?i)certificate"):
                    await http.api(f"https://127.0.0.1:{secure_port}", None, errors=errors).get("/hello")
                assert tls_context.cache_info().currsize == 1
        finally:
            await plain.cleanup()
            await secure.cleanup()

    asyncio.run(main())


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
def test_the_asyncio_backend_speaks_tls_and_times_out_as_httpcore_expects(tmp_path: Path) -> None:
    """g3w's network backend (asyncio streams, no anyio): a TLS request to a server the context
    trusts succeeds, the connection is reused, and a silent server is a ReadTimeout."""
    import httpcore

    from get3w_cli.http.asyncio_backend import AsyncioBackend

    server_context = _self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async def main() -> None:
        secure, port = await _serve(server_context)
        held: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_server(lambda reader, writer: held.append(writer), "127.0.0.1", 0)
        silent_port = silent.sockets[0].getsockname()[1]
        try:
            async with httpcore.AsyncConnectionPool(ssl_context=trusting, network_backend=AsyncioBackend()) as pool:
                for _ in range(2):
                    response = await pool.request("GET", f"https://127.0.0.1:{port}/hello")
                    assert (response.status, response.content) == (200, b'{"ok": true}')
                assert len(pool.connections) == 1  # kept alive and reused
                with pytest.raises(httpcore.ReadTimeout):
                    await pool.request("GET", f"http://127.0.0.1:{silent_port}/", extensions={"timeout": {"read": 0.2}})
        finally:
            await secure.cleanup()
            for writer in held:
                writer.close()
            silent.close()
            await silent.wait_closed()

    asyncio.run(main())


def test_httpcore_pool_runs_on_asyncio_primitives_without_anyio() -> None:
    """httpcore's pool with asyncio's own locks, events and timeouts (use_asyncio_primitives): with
    one connection allowed, a second request waits for it and times out as httpcore's PoolTimeout;
    a request cancelled mid-answer gives its connection back. (That no command loads anyio's
    asyncio layer is test_startup_imports'.)"""
    import httpcore
    from httpcore import _synchronization

    from get3w_cli.http.asyncio_backend import AsyncioBackend, use_asyncio_primitives

    assert use_asyncio_primitives()
    assert _synchronization.anyio.__name__ == "_AsyncioPrimitives"  # type: ignore[attr-defined]

    async def main() -> None:
        release, entered = asyncio.Event(), asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            entered.set()
            await release.wait()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/slow", slow)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
        try:
            async with httpcore.AsyncConnectionPool(max_connections=1, network_backend=AsyncioBackend()) as pool:
                first = asyncio.create_task(pool.request("GET", url))
                await entered.wait()
                with pytest.raises(httpcore.PoolTimeout):
                    await pool.request("GET", url, extensions={"timeout": {"pool": 0.2}})
                first.cancel()  # mid-answer: its connection must come back to the pool
                with pytest.raises(asyncio.CancelledError):
                    await first
                release.set()
                response = await pool.request("GET", url, extensions={"timeout": {"pool": 5}})
                assert (response.status, response.content) == (200, b'{"ok": true}')
        finally:
            await runner.cleanup()

    asyncio.run(main())

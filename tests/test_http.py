"""get3w_cli.http: the retry policy (pure tables) and the client against servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from get3w_cli import __version__
from get3w_cli.constants import (
    HTTP_UPLOAD_MIN_BYTES_PER_S,
    RETRY_AFTER_MAX,
    RETRY_BACKOFF_CAP,
    RETRY_MAX_ATTEMPTS,
)
from get3w_cli.errors import (
    AuthError,
    ConfigError,
    DownloadError,
    NetworkError,
    RejectedError,
    SubmitUnknownError,
    TransientError,
)
from get3w_cli.http import (
    AIOHTTP,
    BACKENDS,
    CONNECT,
    LOST,
    HttpSession,
    error_for_status,
    parse_retry_after,
    retry_delay,
)

KEY = "sk_test_secret_key_123"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test against a server runs on httpx's own pool and on aiohttp's (``http/aio.py``)."""
    return request.param


# --- helpers -------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)


Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, *, cancel_handlers: bool = False) -> AsyncIterator[Server]:
    """An aiohttp server on 127.0.0.1 that records every request and asks ``handler(request, n)``.

    ``cancel_handlers``: a handler is cancelled when its client goes (an output host whose answer
    trickles, left by a stalled download), and the server closes without waiting long for it."""
    server = Server("")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.seen.append(Seen(request.method, request.raw_path, dict(request.headers), body))
        return await handler(request, len(server.seen))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = (web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5) if cancel_handlers
              else web.AppRunner(app))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(*, answer: bool) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A bare TCP server that reads one request, then hangs up (or stays silent if not ``answer``)."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        received.append(head + await reader.readexactly(length))
        if answer:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


class FakeSleep:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def parse_errors(status: int, body: object, text: str) -> tuple[str | None, str, float | None]:
    """The shape the tests' servers use: {"error": {"code", "message", "retry_after"?}}."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return err.get("code"), err.get("message", ""), err.get("retry_after")
    return None, "", None


def json_reply(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json", headers=headers)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port bound but not listening while the test runs: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# A trickling answer: never complete, yet never silent long enough for a read timeout.
TRICKLE_EVERY = 0.05
# Longer than any deadline the trickle tests set: reaching it means the request hung.
HANG_GUARD = 15.0
SLOW_JSON = b'{"id": "t1"}'


@asynccontextmanager
async def trickle_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads a request, then answers one byte every TRICKLE_EVERY seconds, by path:
    ``/headers`` in an endless header line, ``/body`` in an endless body, ``/json`` SLOW_JSON."""
    received: list[bytes] = []
    handlers: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def answer(path: bytes, writer: asyncio.StreamWriter) -> None:
        if path.startswith(b"/headers"):
            head, trickle = b"HTTP/1.1 200 OK\r\nX-Slow: ", iter(lambda: b"a", None)
        elif path.startswith(b"/body"):
            head, trickle = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", iter(lambda: b" ", None)
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(SLOW_JSON)
            trickle = iter([SLOW_JSON[i:i + 1] for i in range(len(SLOW_JSON))])
        writer.write(head)
        for byte in trickle:
            await writer.drain()
            await asyncio.sleep(TRICKLE_EVERY)  # the server's pace, not the test's synchronisation
            writer.write(byte)
        await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                received.append(head + await reader.readexactly(length))
                await answer(head.split(b" ")[1], writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on us: what the tests want
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        for writer in writers:
            writer.close()  # a handler still answering ends on its next write
        await asyncio.gather(*handlers)
        await server.wait_closed()


# --- the pure policy -----------------------------------------------------------------------

ONE = lambda: 1.0  # noqa: E731 - the top of the jitter range


@pytest.mark.parametrize(
    ("method", "attempt", "kwargs", "expected"),
    [
        ("GET", 1, {"status": 500}, 0.5),
        ("GET", 3, {"status": 502}, 2.0),
        ("GET", 9, {"status": 500, "max_attempts": 20}, RETRY_BACKOFF_CAP),
        ("GET", 1, {"failure": LOST}, 0.5),
        ("DELETE", 1, {"status": 504}, 0.5),
        ("POST", 1, {"status": 429}, 0.5),
        ("POST", 2, {"status": 503}, 1.0),
        ("POST", 1, {"failure": CONNECT}, 0.5),
        ("POST", 1, {"status": 500}, None),
        ("POST", 1, {"status": 502}, None),
        ("POST", 1, {"status": 504}, None),
        ("POST", 1, {"failure": LOST}, None),
        ("GET", 1, {"status": 400}, None),
        ("GET", 1, {"status": 404}, None),
        ("GET", 1, {"status": 401}, None),
        ("GET", 1, {}, None),
        ("GET", RETRY_MAX_ATTEMPTS, {"status": 503}, None),
        ("POST", 1, {"status": 429, "retry_after": 3.0}, 3.0),
        ("GET", 1, {"status": 429, "retry_after": -2.0}, 0.0),
        ("GET", 1, {"status": 429, "retry_after": RETRY_AFTER_MAX + 1}, None),
        ("GET", 1, {"status": 429, "retry_after": 11.0, "remaining": 10.0}, None),
        ("GET", 4, {"status": 503, "remaining": 3.0}, None),
    ],
)
def test_retry_delay_table(method: str, attempt: int, kwargs: dict, expected: float | None, real_backoff: None) -> None:
    """retry_delay retries only what is safe, backs off exponentially and respects both budgets."""
    assert retry_delay(method, attempt, rand=ONE, **kwargs) == expected


def test_retry_delay_full_jitter(real_backoff: None) -> None:
    """The backoff is drawn uniformly between zero and the exponential ceiling."""
    assert retry_delay("GET", 3, status=503, rand=lambda: 0.25) == 0.5
    assert retry_delay("GET", 3, status=503, rand=lambda: 0.0) == 0.0


def test_set_testing_shortens_every_backoff_but_not_the_providers_advice(real_backoff: None) -> None:
    """retry.set_testing (the suite's switch, like stamina's): every pause g3w's own back-off computes
    (the HTTP retry loop's, the forwarder's, the batch pacer's) is cut to the test pause; a provider's
    Retry-After and the attempt budget are not; set_testing(False) restores the production pauses."""
    from get3w_cli.batch.pacing import Pacer
    from get3w_cli.retry import NONE, backoff, is_testing, set_testing
    from get3w_cli.webhooks.forwarder import backoff_delay

    def pauses() -> list[float | None]:
        pacer = Pacer(4, clock=lambda: 0.0)
        return [retry_delay("GET", 4, status=503, rand=ONE), backoff_delay(5), pacer.throttled(0, None),
                backoff(3, base=RETRY_BACKOFF_CAP, cap=RETRY_BACKOFF_CAP, jitter=NONE)]

    production = pauses()
    assert not is_testing() and all(p is not None and p >= 0.5 for p in production), production
    set_testing(True, pause=0.01)
    try:
        assert is_testing() and pauses() == [0.01] * 4
        assert retry_delay("GET", 1, status=429, retry_after=1.5, rand=ONE) == 1.5
        assert retry_delay("GET", RETRY_MAX_ATTEMPTS, status=503, rand=ONE) is None
        set_testing(True)
        assert pauses() == [0.0] * 4
    finally:
        set_testing(False)
    assert pauses()[0] == production[0] and not is_testing()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("-3", 0.0), ("soon", None), ("", None), (None, None), ("inf", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    """Retry-After in delta-seconds is read as seconds; junk is ignored."""
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    """Retry-After as an HTTP-date counts from now; a past date means now."""
    now = 1_800_000_000.0
    later = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(12.0)
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (402, AuthError), (403, AuthError), (400, RejectedError), (404, RejectedError),
     (409, RejectedError), (422, RejectedError), (302, RejectedError), (429, TransientError),
     (500, TransientError), (503, TransientError)],
)
def test_error_for_status_classes(status: int, cls: type) -> None:
    """Each HTTP status maps onto the error class (and so the exit code) of the contract."""
    error = error_for_status(status, "m", code="C", retry_after=1.0)
    assert type(error) is cls and error.status == status and error.code == "C" and error.retry_after == 1.0


# --- the client against real sockets -------------------------------------------------------


def test_get_sends_key_agent_and_parses_json(backend: str) -> None:
    """A 2xx JSON answer becomes a Reply; the key goes as Bearer, with g3w's User-Agent."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return json_reply({"ok": True}, headers={"X-Thing": "1"})

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            reply = await http.api(srv.url + "/", KEY, errors=parse_errors).get("/api/v3/balance")
        assert (reply.status, reply.body, reply.headers["x-thing"]) == (200, {"ok": True}, "1")
        assert srv.seen[0].headers["Authorization"] == f"Bearer {KEY}"
        assert srv.seen[0].headers["User-Agent"] == f"g3w/{__version__}"
        assert srv.seen[0].raw_path == "/api/v3/balance"

    asyncio.run(main())


def test_the_request_line_is_sent_as_httpx_built_it(backend: str) -> None:
    """Escapes in a path reach the provider as they are on both pools (no requoting by aiohttp's yarl)."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return json_reply({})

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            await http.api(srv.url, KEY, errors=parse_errors).get("/api/v3/predictions/a%2Fb%7Ec d/result")
        assert srv.seen[0].raw_path == "/api/v3/predictions/a%2Fb%7Ec%20d/result"

    asyncio.run(main())


def test_a_compressed_answer_is_decoded_once(backend: str) -> None:
    """A gzip answer reaches the adapter as JSON on both pools (aiohttp hands httpx the raw bytes)."""
    import gzip

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            body = gzip.compress(json.dumps({"data": {"id": "t1"}}).encode())
            return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            reply = await http.api(srv.url, KEY, errors=parse_errors).post("/api/v3/x", json={"p": 1})
        assert reply.body == {"data": {"id": "t1"}}
        assert "gzip" in srv.seen[0].headers["Accept-Encoding"]

    asyncio.run(main())


def test_post_keeps_path_slashes_and_encodes_query(backend: str) -> None:
    """Paths are sent raw (model ids with slashes); query values are URL-encoded."""
    hook = "https://hooks.example/cb/abc?t=1&u=2"

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return json_reply({"id": "x"}, status=202)

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            api = http.api(srv.url, KEY, errors=parse_errors)
            reply = await api.post("/v1/models/fal-ai/flux/schnell/run", json={"a": 1}, params={"webhook": hook})
        assert reply.status == 202
        path, _, query = srv.seen[0].raw_path.partition("?")
        assert path == "/v1/models/fal-ai/flux/schnell/run"
        assert "&u=" not in query and parse_qs(query) == {"webhook": [hook]}
        assert json.loads(srv.seen[0].body) == {"a": 1}

    asyncio.run(main())


def test_non_json_success_has_no_body(backend: str) -> None:
    """A 200 whose body is not JSON gives Reply.body None rather than an exception."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return web.Response(text="<html>hello</html>", content_type="text/html")

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            reply = await http.api(srv.url, KEY, errors=parse_errors).get("/x")
        assert (reply.status, reply.body) == (200, None)

    asyncio.run(main())


def test_html_502_becomes_one_clean_line_after_all_attempts(backend: str) -> None:
    """An HTML 502 page is retried for GET up to the attempt limit, then reported in one line."""
    page = "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>"

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return web.Response(status=502, text=page, content_type="text/html")

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            with pytest.raises(TransientError) as info:
                await http.api(srv.url, KEY, errors=parse_errors).get("/api/v3/predictions/p1")
        host = urlsplit(srv.url).netloc
        assert str(info.value) == f"HTTP 502 from {host}: Bad Gateway"
        assert info.value.status == 502 and info.value.exit_code == 6
        assert len(srv.seen) == RETRY_MAX_ATTEMPTS and len(sleep.delays) == RETRY_MAX_ATTEMPTS - 1

    asyncio.run(main())


def test_get_429_honours_retry_after_then_succeeds(backend: str) -> None:
    """A GET answered 429 with Retry-After waits exactly that long, then gets the 200."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            if n == 1:
                body = {"error": {"code": "RATE_LIMITED", "message": "slow"}}
                return json_reply(body, 429, {"Retry-After": "2"})
            return json_reply({"id": "t1"})

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            reply = await http.api(srv.url, KEY, errors=parse_errors).get("/v1/jobs/t1")
        assert reply.body == {"id": "t1"} and sleep.delays == [2.0] and len(srv.seen) == 2

    asyncio.run(main())


def test_body_retry_after_is_preferred_over_header(backend: str) -> None:
    """The provider's error.retry_after wins over the Retry-After header."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            if n == 1:
                body = {"error": {"code": "RATE_LIMITED", "message": "slow", "retry_after": 0.25}}
                return json_reply(body, 429, {"Retry-After": "7"})
            return json_reply({"id": "t1"}, 202)

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            await http.api(srv.url, KEY, errors=parse_errors).post("/v1/models/m/run", json={})
        assert sleep.delays == [0.25] and len(srv.seen) == 2

    asyncio.run(main())


def test_post_500_is_not_retried(backend: str) -> None:
    """A POST answered 500 may have created a task: exactly one request, then TransientError."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return json_reply({"error": {"code": "INTERNAL", "message": "boom"}}, 500)

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            with pytest.raises(TransientError) as info:
                await http.api(srv.url, KEY, errors=parse_errors).post("/api/v3/get3w/flux-dev", json={})
        assert len(srv.seen) == 1 and sleep.delays == []
        assert info.value.code == "INTERNAL" and "boom" in str(info.value)

    asyncio.run(main())


def test_post_503_is_retried(backend: str) -> None:
    """A POST answered 503 created nothing, so it is sent again until it succeeds."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            if n < 3:
                return web.Response(status=503, text="Service Unavailable")
            return json_reply({"id": "t1"})

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            reply = await http.api(srv.url, KEY, errors=parse_errors).post("/v1/a/b/c", json={"p": 1})
        assert reply.body == {"id": "t1"} and len(srv.seen) == 3 and len(sleep.delays) == 2

    asyncio.run(main())


def test_post_connection_lost_after_sending_is_submit_unknown(backend: str) -> None:
    """A server that reads the POST and hangs up: SubmitUnknownError after exactly one request."""

    async def main() -> None:
        sleep = FakeSleep()
        async with raw_server(answer=True) as (url, received), HttpSession(backend=backend, sleep=sleep) as http:
            with pytest.raises(SubmitUnknownError):
                await http.api(url, KEY, errors=parse_errors).post("/api/v3/get3w/flux-dev", json={"p": "cat"})
        assert len(received) == 1 and sleep.delays == []
        assert received[0].endswith(b'{"p":"cat"}')

    asyncio.run(main())


def test_post_read_timeout_is_submit_unknown(backend: str) -> None:
    """A POST that gets no answer within its read timeout is never resent."""

    async def main() -> None:
        sleep = FakeSleep()
        async with raw_server(answer=False) as (url, received), HttpSession(backend=backend, sleep=sleep) as http:
            with pytest.raises(SubmitUnknownError) as info:
                await http.api(url, KEY, errors=parse_errors).post("/v1/x/y/z", json={}, read_timeout=0.2)
        assert len(received) == 1 and sleep.delays == []
        assert KEY not in str(info.value)

    asyncio.run(main())


def test_get_lost_connection_is_retried(backend: str) -> None:
    """A GET whose connection drops is retried until the attempts run out, then NetworkError.

    aiohttp sends an idempotent request once more at once when its connection drops; g3w's
    attempts and back-off are counted on top of that, and a POST never gets it (next tests)."""
    sends_per_attempt = 2 if backend == AIOHTTP else 1

    async def main() -> None:
        sleep = FakeSleep()
        async with (raw_server(answer=True) as (url, received),
                    HttpSession(backend=backend, sleep=sleep, max_attempts=3) as http):
            with pytest.raises(NetworkError) as info:
                await http.api(url, KEY, errors=parse_errors).get("/v1/requests/r1")
        assert not isinstance(info.value, SubmitUnknownError)
        assert len(received) == 3 * sends_per_attempt and len(sleep.delays) == 2

    asyncio.run(main())


def test_connection_refused_post_is_retried_then_network_error(backend: str) -> None:
    """A POST that never connected is safe to resend; in the end it is a NetworkError, exit 6."""

    async def main() -> None:
        sleep = FakeSleep()
        with refusing_port() as port:
            async with HttpSession(backend=backend, sleep=sleep, max_attempts=3) as http:
                api = http.api(f"http://127.0.0.1:{port}", KEY, errors=parse_errors)
                with pytest.raises(NetworkError) as info:
                    await api.post("/v1/x/y/z", json={})
        assert type(info.value) is NetworkError and info.value.exit_code == 6
        assert len(sleep.delays) == 2

    asyncio.run(main())


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickled_answer_to_a_post_is_cut_at_the_deadline_and_not_resent(backend: str, where: str) -> None:
    """An answer trickling a byte at a time (never silent for a read timeout) ends at the request's
    deadline; the POST was sent, so it is SubmitUnknownError (exit 6) and never sent again."""

    async def main() -> None:
        sleep = FakeSleep()
        async with trickle_server() as (url, received), \
                HttpSession(backend=backend, sleep=sleep, request_deadline=0.5) as http:
            api = http.api(url, KEY, errors=parse_errors)
            with pytest.raises(SubmitUnknownError) as info:
                await asyncio.wait_for(api.post(f"/{where}", json={"p": "cat"}), HANG_GUARD)
        assert len(received) == 1 and sleep.delays == [] and info.value.exit_code == 6
        assert "within 0.5s" in str(info.value) and KEY not in str(info.value)

    asyncio.run(main())


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_trickled_answer_to_a_get_or_delete_is_a_network_error_retried(backend: str, where: str, method: str) -> None:
    """A GET or DELETE cut at its deadline is a NetworkError, retried by the usual policy."""

    async def main() -> None:
        sleep = FakeSleep()
        async with trickle_server() as (url, received), \
                HttpSession(backend=backend, sleep=sleep, request_deadline=0.3, max_attempts=2) as http:
            api = http.api(url, KEY, errors=parse_errors)
            call = api.get(f"/{where}") if method == "GET" else api.delete(f"/{where}")
            with pytest.raises(NetworkError) as info:
                await asyncio.wait_for(call, HANG_GUARD)
        assert type(info.value) is NetworkError and "within 0.3s" in str(info.value)
        assert [r.split(b" ")[0].decode() for r in received] == [method, method] and len(sleep.delays) == 1

    asyncio.run(main())


def test_the_sync_submit_gets_the_longer_deadline_but_still_one(backend: str) -> None:
    """A POST with its own read timeout (the sync-mode submit) may take longer than the normal
    deadline, up to the sync deadline; a trickle still ends there."""

    async def main() -> None:
        async with trickle_server() as (url, received), \
                HttpSession(backend=backend, sleep=FakeSleep(), request_deadline=0.3, sync_deadline=1.5) as http:
            api = http.api(url, KEY, errors=parse_errors)
            with pytest.raises(SubmitUnknownError):  # ~0.6 s of trickle: over the normal deadline
                await api.post("/json", json={})
            reply = await api.post("/json", json={}, read_timeout=5.0)
            assert reply.body == {"id": "t1"}
            with pytest.raises(SubmitUnknownError) as info:
                await asyncio.wait_for(api.post("/body", json={}, read_timeout=5.0), HANG_GUARD)
        assert "within 1.5s" in str(info.value) and len(received) == 3

    asyncio.run(main())


def test_an_upload_gets_time_for_its_size(backend: str) -> None:
    """An upload's deadline grows with what it sends (HTTP_UPLOAD_MIN_BYTES_PER_S), so a large
    file on a slow link is not cut where a small request would be."""
    content = bytes(4 * HTTP_UPLOAD_MIN_BYTES_PER_S)  # four more seconds

    async def main() -> None:
        async with trickle_server() as (url, received), \
                HttpSession(backend=backend, sleep=FakeSleep(), request_deadline=0.3) as http:
            api = http.api(url, KEY, errors=parse_errors)
            reply = await api.post("/json", files={"file": ("a.png", content, "image/png")})
        assert reply.body == {"id": "t1"} and len(received) == 1 and content in received[0]

    asyncio.run(main())


def test_time_budget_stops_retries(backend: str, real_backoff: None) -> None:
    """With many attempts allowed, the total-time budget still ends the retries."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return web.Response(status=503, text="busy")

        sleep = FakeSleep()
        async with (serve(handler) as srv,
                    HttpSession(backend=backend, sleep=sleep, retry_budget=3.0, max_attempts=1000) as http):
            with pytest.raises(TransientError):
                await http.api(srv.url, KEY, errors=parse_errors).get("/x")
        assert sum(sleep.delays) <= 3.0 and len(srv.seen) == len(sleep.delays) + 1 < 1000

    asyncio.run(main())


def test_retry_after_beyond_budget_gives_up_at_once(backend: str) -> None:
    """A Retry-After longer than the remaining budget raises now, keeping the advice."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "30"})

        sleep = FakeSleep()
        async with serve(handler) as srv, HttpSession(backend=backend, sleep=sleep, retry_budget=10.0) as http:
            with pytest.raises(TransientError) as info:
                await http.api(srv.url, KEY, errors=parse_errors).get("/x")
        assert len(srv.seen) == 1 and sleep.delays == [] and info.value.retry_after == 30.0

    asyncio.run(main())


@pytest.mark.parametrize(("status", "cls", "exit_code"), [(401, AuthError, 3), (404, RejectedError, 5)])
def test_client_errors_are_not_retried(status: int, cls: type, exit_code: int, backend: str) -> None:
    """4xx answers raise at once with the provider's code and message."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            return json_reply({"error": {"code": "NOPE", "message": "no\nway"}}, status)

        async with serve(handler) as srv, HttpSession(backend=backend, sleep=FakeSleep()) as http:
            with pytest.raises(cls) as info:
                await http.api(srv.url, KEY, errors=parse_errors).get("/x")
        assert len(srv.seen) == 1 and info.value.exit_code == exit_code
        assert info.value.code == "NOPE" and str(info.value).endswith(": no way")

    asyncio.run(main())


def test_api_does_not_follow_redirects(backend: str) -> None:
    """An API redirect is an error, so the key is never carried to another place."""

    async def main() -> None:
        async def handler(request: web.Request, n: int) -> web.Response:
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")

        async with serve(handler) as srv, HttpSession(backend=backend) as http:
            with pytest.raises(RejectedError) as info:
                await http.api(srv.url, KEY, errors=parse_errors).get("/x")
        assert info.value.status == 302 and len(srv.seen) == 1

    asyncio.run(main())


def test_key_is_not_in_repr_and_bad_settings_are_config_errors(backend: str) -> None:
    """ApiClient's repr hides the key; bad keys and base URLs are ConfigErrors, not crashes."""

    async def main() -> None:
        async with HttpSession(backend=backend) as http:
            api = http.api("https://api.get3w.com", KEY, errors=parse_errors)
            assert KEY not in repr(api) and "api.get3w.com" in repr(api)
            with pytest.raises(ConfigError) as info:
                http.api("https://api.get3w.com", "sk_bad\nkey", errors=parse_errors)
            assert "sk_bad" not in str(info.value)
            with pytest.raises(ConfigError):
                http.api("api.get3w.com", KEY, errors=parse_errors)

    asyncio.run(main())


# --- downloads -----------------------------------------------------------------------------


def test_download_writes_file_reports_progress_and_never_sends_key(tmp_path: Path, backend: str) -> None:
    """A download follows a redirect, writes every byte, reports progress, and sends no key."""
    payload = bytes(range(256)) * 1000

    async def main() -> None:
        async def cdn(request: web.Request, n: int) -> web.StreamResponse:
            if request.path == "/out/0.png":
                raise web.HTTPFound("/blob/0.png")
            return web.Response(body=payload, content_type="image/png")

        async def api_handler(request: web.Request, n: int) -> web.Response:
            return json_reply({"outputs": [cdn_srv.url + "/out/0.png"]})

        progress: list[tuple[int, int | None]] = []
        async with serve(cdn) as cdn_srv, serve(api_handler) as api_srv, HttpSession(backend=backend) as http:
            reply = await http.api(api_srv.url, KEY, errors=parse_errors).get("/api/v3/predictions/p1")
            dest = tmp_path / "p1_0.png.part"
            url = reply.body["outputs"][0]
            ctype = await http.download(url, dest, on_progress=lambda d, t: progress.append((d, t)))
        assert ctype == "image/png" and dest.read_bytes() == payload
        assert progress[-1] == (len(payload), len(payload)) and len(progress) > 1
        assert [s.raw_path for s in cdn_srv.seen] == ["/out/0.png", "/blob/0.png"]
        assert all("Authorization" not in s.headers for s in cdn_srv.seen)
        assert api_srv.seen[0].headers["Authorization"] == f"Bearer {KEY}"

    asyncio.run(main())


def test_download_retries_5xx_then_succeeds(tmp_path: Path, backend: str) -> None:
    """A download answered 503 is retried like a GET."""

    async def main() -> None:
        async def cdn(request: web.Request, n: int) -> web.Response:
            return web.Response(status=503) if n == 1 else web.Response(body=b"abc")

        sleep = FakeSleep()
        async with serve(cdn) as srv, HttpSession(backend=backend, sleep=sleep) as http:
            await http.download(srv.url + "/f", tmp_path / "f")
        assert (tmp_path / "f").read_bytes() == b"abc" and len(sleep.delays) == 1

    asyncio.run(main())


def test_download_failure_is_download_error_and_leaves_no_file(tmp_path: Path, backend: str) -> None:
    """A 404 output raises DownloadError (exit 8) carrying the URL, and no partial file is left."""

    async def main() -> None:
        async def cdn(request: web.Request, n: int) -> web.Response:
            return web.Response(status=404, text="gone")

        async with serve(cdn) as srv, HttpSession(backend=backend, sleep=FakeSleep()) as http:
            url = srv.url + "/out/x.png?sig=secret"
            with pytest.raises(DownloadError) as info:
                await http.download(url, tmp_path / "x.part")
        assert info.value.exit_code == 8 and info.value.urls == (url,)
        assert "404" in str(info.value) and "secret" not in str(info.value)
        assert not (tmp_path / "x.part").exists() and len(srv.seen) == 1

    asyncio.run(main())


def test_download_rejects_non_http_urls(tmp_path: Path, backend: str) -> None:
    """Only http(s) output URLs are fetched."""

    async def main() -> None:
        async with HttpSession(backend=backend) as http:
            with pytest.raises(DownloadError):
                await http.download("file:///etc/passwd", tmp_path / "p")

    asyncio.run(main())

#!/usr/bin/env python3
"""A stand-in ngrok v3 agent for tests, run by pyngrok as its ``ngrok_path``.

Speaks what pyngrok uses: ``version``/``--version``, ``config add-authtoken``, ``config check``
and ``start --none --log stdout [--config F] [--authtoken T]``. ``start`` prints the agent's
logfmt startup lines, serves the local agent API (``/api/endpoints``, ``/api/tunnels``,
``/api/status``) and, for each endpoint created, a "public" ``http://127.0.0.1:<port>`` that
forwards every request to the endpoint's upstream, as ngrok does. Stdlib only.

``FAKE_NGROK_MODE`` picks a failure:
    ok            (default) works
    session_limit ERR_NGROK_108 on connect, then exit 1
    auth_failed   ERR_NGROK_105 on connect (echoing the token, as ngrok does), then exit 1
    hang          never reports the session as up (a start timeout)
    crash         exits with an error right after starting its web service
    unreachable   comes up, but the public URL forwards to a closed port (502 ERR_NGROK_8012)
``FAKE_NGROK_STATE``, when set, is a directory where each ``start`` writes ``<pid>.pid``.

Tests call ``install(directory, mode)`` to get an executable wrapper to pass as ngrok_path.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import uuid
from urllib.parse import unquote, urlsplit

VERSION = "3.22.1"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "content-length"}
_print_lock = threading.Lock()


def install(directory: str, mode: str = "ok", state_dir: str | None = None) -> str:
    """Write an executable ``ngrok`` wrapper running this script in ``mode``; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"ngrok-{mode}")
    state = f'FAKE_NGROK_STATE="{state_dir}" ' if state_dir else ""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "#!/bin/sh\n"
            f'{state}FAKE_NGROK_MODE="${{FAKE_NGROK_MODE:-{mode}}}" '
            f'exec "{sys.executable}" "{os.path.abspath(__file__)}" "$@"\n'
        )
    os.chmod(path, 0o755)
    return path


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "\\='):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def log(lvl: str, msg: str, **fields: object) -> None:
    """Print one agent log line in ngrok's logfmt."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    parts = [f"t={stamp}", f"lvl={lvl}", f"msg={_quote(msg)}"]
    parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
    with _print_lock:
        try:
            print(" ".join(parts), flush=True)
        except (BrokenPipeError, ValueError):
            pass


_held: list[socket.socket] = []  # ports this agent keeps bound, unlistened, while it lives


def _closed_port() -> int:
    """A port where connections are refused for as long as this agent runs: bound and held (not
    listening), so that no other server can take it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]


class Forwarder(http.server.BaseHTTPRequestHandler):
    """The public side of one endpoint: relays each request to the upstream."""

    target: tuple[str, int] = ("127.0.0.1", 0)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _relay(self) -> None:
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = self.client_address[0]
        headers["X-Forwarded-Proto"] = "http"
        log("info", "join connections", obj="join", l=f"{self.target[0]}:{self.target[1]}", r=self.client_address[0])
        try:
            conn = http.client.HTTPConnection(*self.target, timeout=10)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except OSError as exc:
            self._send(502, [("Ngrok-Error-Code", "ERR_NGROK_8012")], f"ERR_NGROK_8012: {exc}".encode())
            return
        kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        self._send(resp.status, kept, data)

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay


class Agent:
    """The endpoints of one agent process and their forwarding servers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.endpoints: dict[str, dict] = {}
        self.servers: dict[str, http.server.ThreadingHTTPServer] = {}
        self.lock = threading.Lock()

    def create(self, spec: dict, style: str) -> dict:
        name = spec.get("name") or f"endpoint-{uuid.uuid4().hex[:8]}"
        upstream = (spec.get("upstream") or {}).get("url") or spec.get("addr") or "80"
        split = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        host = "127.0.0.1" if split.hostname in (None, "localhost") else split.hostname
        port = _closed_port() if self.mode == "unreachable" else (split.port or 80)
        handler = type("Bound", (Forwarder,), {"target": (host, port)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        public = f"http://127.0.0.1:{server.server_address[1]}"
        uri = f"/api/{style}/{name}"
        record = {"id": f"ep_{uuid.uuid4().hex}", "name": name, "uri": uri, "url": public, "public_url": public,
                  "proto": "http", "upstream": {"url": upstream, "protocol": "http1"},
                  "config": {"addr": upstream, "inspect": True}, "metrics": {}}
        with self.lock:
            self.endpoints[name] = record
            self.servers[name] = server
        log("info", "started tunnel", obj="tunnels", name=name, addr=upstream, url=public)
        return record

    def delete(self, name: str) -> bool:
        with self.lock:
            self.endpoints.pop(name, None)
            server = self.servers.pop(name, None)
        if server is None:
            return False
        server.shutdown()
        server.server_close()
        return True


class Api(http.server.BaseHTTPRequestHandler):
    """The agent's local API (the subset pyngrok calls)."""

    agent: Agent

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, status: int, obj: object | None) -> None:
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str | None]:
        parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
        style = parts[1] if len(parts) > 1 and parts[0] == "api" else ""
        return style, parts[2] if len(parts) > 2 else None

    def do_GET(self) -> None:
        style, name = self._route()
        if style == "status":
            return self._json(200, {"status": "online"})
        if style not in ("endpoints", "tunnels"):
            return self._json(404, {"msg": "not found"})
        if name is None:
            items = list(self.agent.endpoints.values())
            return self._json(200, {style: items, "uri": f"/api/{style}"})
        found = self.agent.endpoints.get(name)
        return self._json(200, found) if found else self._json(404, {"msg": "tunnel not found"})

    def do_POST(self) -> None:
        style, _ = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        spec = json.loads(self.rfile.read(length) or b"{}")
        if style not in ("endpoints", "tunnels"):
            return self._json(404, {"msg": "not found"})
        return self._json(201, self.agent.create(spec, style))

    def do_DELETE(self) -> None:
        _, name = self._route()
        return self._json(204, None) if name and self.agent.delete(name) else self._json(404, {"msg": "not found"})


def _options(args: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        if arg.startswith("--") and arg != "--none":
            key, _, value = arg[2:].partition("=")
            opts[key] = value or next(it, "")
    return opts


def _config_token(path: str | None) -> str | None:
    if not path or not os.path.exists(path):
        return None
    import yaml  # pyngrok depends on PyYAML, so the test venv has it

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return (data.get("agent") or {}).get("authtoken") or data.get("authtoken")


def _fail(code: str, text: str) -> int:
    err = f"{text}\n\n{code}\n"
    log("eror", "failed to reconnect session", obj="tunnels.session", err=err)
    log("crit", "command failed", err=err)
    return 1


def _watch_parent() -> int:
    parent = os.getppid()
    while os.getppid() == parent:  # an orphaned agent exits instead of lingering
        time.sleep(0.2)
    return 0


def start(opts: dict[str, str]) -> int:
    mode = os.environ.get("FAKE_NGROK_MODE", "ok")
    state = os.environ.get("FAKE_NGROK_STATE")
    if state:
        with open(os.path.join(state, f"{os.getpid()}.pid"), "w", encoding="utf-8") as fh:
            fh.write(mode)
    token = opts.get("authtoken") or _config_token(opts.get("config"))
    Api.agent = Agent(mode)
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()
    log("info", "open config file", path=opts.get("config", ""), err="nil")
    log("info", "starting web service", obj="web", addr=f"127.0.0.1:{api.server_address[1]}", allow_hosts="[]")
    if mode == "crash":
        log("crit", "command failed", err="simulated crash")
        return 3
    if mode == "hang":
        return _watch_parent()
    if not token:
        return _fail("ERR_NGROK_4018",
                     "authentication failed: Usage of ngrok requires a verified account and authtoken.")
    if mode == "session_limit":
        return _fail("ERR_NGROK_108",
                     "authentication failed: Your account is limited to 1 simultaneous ngrok agent sessions.")
    if mode == "auth_failed":
        return _fail("ERR_NGROK_105", "authentication failed: The authtoken you specified does not look like a proper "
                     f"ngrok tunnel authtoken.\nYour authtoken: {token}")
    log("info", "client session established", obj="tunnels.session")
    log("info", "tunnel session started", obj="tunnels.session")
    return _watch_parent()


def main(argv: list[str]) -> int:
    args = argv[1:]
    if not args or args[0] in ("version", "--version", "-v"):
        print(f"ngrok version {VERSION}")
        return 0
    opts = _options(args)
    if args[:2] == ["config", "add-authtoken"] and len(args) > 2:
        print(f"Authtoken saved to configuration file: {opts.get('config', 'ngrok.yml')}")
        return 0
    if args[:2] == ["config", "check"]:
        print(f"Valid configuration file at {opts.get('config', 'ngrok.yml')}")
        return 0
    if args[0] == "start":
        return start(opts)
    print(f"ERROR: unknown command {args[0]!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

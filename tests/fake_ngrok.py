#!/usr/bin/env python3
"""A stand-in ngrok agent for tests, run by pyngrok as its ``ngrok_path``; faithful release by release.

Speaks what pyngrok uses: ``version``/``--version``, ``config add-authtoken``, ``config check``
and ``start --none --log stdout [--config F] [--authtoken T]``. ``start`` prints the agent's
logfmt lines as real agents print them (an ``err=`` value is Go-quoted: its ``\\r\\n`` arrive
escaped), serves the local agent API and, for each endpoint created, a "public"
``http://127.0.0.1:<port>`` that forwards every request to the endpoint's upstream, as ngrok does.
Stdlib (and PyYAML, which pyngrok brings) only.

The agent's generation follows ``FAKE_NGROK_VERSION`` (default ``CURRENT``), as real releases do:
    2.x           a v2 agent: ngrok's service refuses it today (ERR_NGROK_121)
    3.0 - 3.15    reads only version "2" config files
    3.16 - 3.29   reads version "3" config files too; serves /api/tunnels only
    3.30 and up   serves /api/endpoints as well (pyngrok 9's default API)

``FAKE_NGROK_MODE`` picks a behaviour:
    ok                 (default) works
    session_limit      ERR_NGROK_108 when the session starts, then exits 1
    auth_failed        ERR_NGROK_105 (echoing the token, as ngrok does), then exits 1
    revoked            ERR_NGROK_107 (a well-formed token ngrok no longer accepts), then exits 1
    update_required    ERR_NGROK_121 (the service wants a newer agent), then exits 1
    unsupported        ERR_NGROK_120 (this agent version is no longer supported), then exits 1
    v1_token           ERR_NGROK_106 (an ngrok v1 authtoken), then exits 1
    credential_revoked ERR_NGROK_300 (the authtoken's credential was revoked), then exits 1
    no_token           ERR_NGROK_4018 (the account is not verified; also what any mode says when
                       no authtoken reaches the agent), then exits 1
    offline            no network: "failed to reconnect session ... network is unreachable" every
                       second, and never exits by itself (as real agents do)
    hang               never reports the session as up, and says nothing
    crash              exits with an error right after starting its web service
    unreachable        comes up, but the public URL forwards to a closed port (502 ERR_NGROK_8012)
    endpoint_in_use    the session comes up; creating the endpoint fails with ERR_NGROK_334
    too_many_endpoints the session comes up; creating the endpoint fails with ERR_NGROK_324
    web_in_use         the default web address (4040) is taken: says so, and serves on another
On SIGUSR1 a running agent loses its session (the network went away): it logs the session closing,
stops forwarding, and logs a failed reconnect every second from then on.
``FAKE_NGROK_STATE``, when set, is a directory where each ``start`` writes ``<pid>.pid``.

Tests call ``install(directory, mode, version=...)`` to get an executable wrapper to pass as
ngrok_path, and ``archive(...)`` for a ``.tgz`` of one, as ngrok's download site serves the agent.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import socket
import sys
import tarfile
import threading
import time
import uuid
from urllib.parse import unquote, urlsplit

from fake_edge import EdgeHandler  # tests/fake_edge.py, beside this script

CURRENT = "3.39.8"  # a current agent: /api/endpoints and /api/tunnels
TUNNELS_ONLY = "3.22.1"  # before 3.30: /api/tunnels only
CONFIG_V2_ONLY = "3.3.1"  # before 3.16: version "2" config files only
V2_AGENT = "2.3.41"  # the last v2 agent
ENDPOINTS_SINCE = (3, 30)
CONFIG_V3_SINCE = (3, 16)
RECONNECT_EVERY = 1.0  # seconds between two failed reconnects, as the real agent's back-off starts
OFFLINE = ('failed to dial ngrok server with address "connect.ngrok-agent.com:443": dial tcp: lookup '
           "connect.ngrok-agent.com on 127.0.0.53:53: dial udp 127.0.0.53:53: connect: network is unreachable")
_print_lock = threading.Lock()


def install(directory: str, mode: str = "ok", state_dir: str | None = None, *, version: str = CURRENT,
            name: str | None = None) -> str:
    """Write an executable ``ngrok`` wrapper running this script in ``mode``; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name or f"ngrok-{mode}-{version}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_wrapper(mode, state_dir, version))
    os.chmod(path, 0o755)
    return path


def archive(path: str, mode: str = "ok", state_dir: str | None = None, *, version: str = CURRENT) -> str:
    """Write a gzipped tar holding one executable ``ngrok`` (as ngrok's download site serves it)."""
    data = _wrapper(mode, state_dir, version).encode()
    info = tarfile.TarInfo("ngrok")
    info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data))
    return path


def _wrapper(mode: str, state_dir: str | None, version: str) -> str:
    state = f'FAKE_NGROK_STATE="{state_dir}" ' if state_dir else ""
    return ("#!/bin/sh\n"
            f'{state}FAKE_NGROK_MODE="${{FAKE_NGROK_MODE:-{mode}}}" FAKE_NGROK_VERSION="{version}" '
            f'exec "{sys.executable}" "{os.path.abspath(__file__)}" "$@"\n')


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _quote(value: object) -> str:
    """A logfmt value as the agent writes it: bare when it can be, else Go-quoted (\\r, \\n escaped)."""
    text = str(value)
    if text and not any(c in text for c in ' "\\=\r\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


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


def ngrok_error(text: str, code: str) -> str:
    """An error as ngrok's service words it: the text, then its code after CRLFs."""
    return f"{text}\r\n\r\n{code}\r\n"


SESSION_ERRORS = {
    "session_limit": ("ERR_NGROK_108", ("authentication failed: Your account is limited to 1 simultaneous ngrok agent "
                      "sessions.\nYou can run multiple simultaneous tunnels from a single agent session by defining "
                      "the tunnels in your agent configuration file and starting them with the command `ngrok start "
                      "--all`.\nRead more about the agent configuration file: https://ngrok.com/docs/secure-tunnels/"
                      "ngrok-agent/reference/config\nYou can view your current agent sessions in the dashboard:\n"
                      "https://dashboard.ngrok.com/agents")),
    "auth_failed": ("ERR_NGROK_105", ("authentication failed: The authtoken you specified does not look like a proper "
                    "ngrok tunnel authtoken.\nYour authtoken: {token}\nInstructions to install your authtoken are on "
                    "your ngrok dashboard:\nhttps://dashboard.ngrok.com/get-started/your-authtoken")),
    "revoked": ("ERR_NGROK_107", ("authentication failed: The authtoken you specified is properly formed, but it is "
                "invalid.\nYour authtoken: {token}\nThis usually happens when:\n    - You reset your authtoken\n"
                "Go to your ngrok dashboard and double check that your authtoken is correct:\n"
                "https://dashboard.ngrok.com/get-started/your-authtoken")),
    "update_required": ("ERR_NGROK_121", ('authentication failed: Your ngrok-agent version "{version}" is too old. '
                        'The minimum supported agent version for your account is "3.2.0". Please update to a newer '
                        "version with `ngrok update`, by downloading from https://ngrok.com/download, or by updating "
                        "your SDK version.")),
    "unsupported": ("ERR_NGROK_120", ('authentication failed: Your ngrok agent version "{major}" is no longer '
                    "supported. Only the most recent version of the ngrok agent is supported without an account.\n"
                    "Update to a newer version with `ngrok update` or by downloading from https://ngrok.com/download."
                    "\nSign up for an account to avoid forced version upgrades: https://ngrok.com/signup.")),
    "v1_token": ("ERR_NGROK_106", ("authentication failed: The authtoken you specified is an ngrok v1 authtoken, but "
                 "you're using ngrok v2.\nYour authtoken: {token}\nInstructions to install your authtoken are on your "
                 "ngrok dashboard:\nhttps://dashboard.ngrok.com/get-started/your-authtoken")),
    "credential_revoked": ("ERR_NGROK_300", ("authentication failed: The authtoken credential cr_2bX9fakeCredential "
                           "has been revoked\nand is no longer valid.")),
    "no_token": ("ERR_NGROK_4018", ("authentication failed: Usage of ngrok requires a verified account and authtoken."
                 "\n\nSign up for an account: https://dashboard.ngrok.com/signup\nInstall your authtoken: "
                 "https://dashboard.ngrok.com/get-started/your-authtoken")),
}
ENDPOINT_ERRORS = {
    "endpoint_in_use": ("ERR_NGROK_334", ("The endpoint 'https://g3w-test.ngrok-free.app' is already online. Either\n"
                        "1. stop your existing endpoint first, or\n2. start both endpoints with `--pooling-enabled` "
                        "to load balance between them.")),
    "too_many_endpoints": ("ERR_NGROK_324", ("Your account may not run more than 3 endpoints over a single ngrok agent "
                           "session.\nThe endpoints already running on this session are:\n"
                           "https://a.ngrok-free.app, https://b.ngrok-free.app, https://c.ngrok-free.app")),
}

_held: list[socket.socket] = []  # ports this agent keeps bound, unlistened, while it lives


def _closed_port() -> int:
    """A port where connections are refused for as long as this agent runs: bound and held (not
    listening), so that no other server can take it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]


class Forwarder(EdgeHandler):
    """The public side of one endpoint: relays each request to the upstream."""

    target: tuple[str, int] = ("127.0.0.1", 0)

    def _relay(self) -> None:
        body = self.body()
        log("info", "join connections", obj="join", l=f"{self.target[0]}:{self.target[1]}", r=self.client_address[0])
        try:
            self.forward(self.target, body, {"X-Forwarded-For": self.client_address[0], "X-Forwarded-Proto": "http"})
        except OSError as exc:
            self.send(502, [("Ngrok-Error-Code", "ERR_NGROK_8012")], f"ERR_NGROK_8012: {exc}".encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay


class Agent:
    """The endpoints of one agent process and their forwarding servers."""

    def __init__(self, mode: str, version: str) -> None:
        self.mode = mode
        self.version = version_tuple(version)
        self.endpoints: dict[str, dict] = {}
        self.servers: dict[str, http.server.ThreadingHTTPServer] = {}
        self.lock = threading.Lock()
        self.online = True

    def styles(self) -> tuple[str, ...]:
        """The API paths this release serves."""
        return ("tunnels", "endpoints") if self.version >= ENDPOINTS_SINCE else ("tunnels",)

    def create(self, spec: dict, style: str) -> tuple[int, dict]:
        name = spec.get("name") or f"endpoint-{uuid.uuid4().hex[:8]}"
        if self.mode in ENDPOINT_ERRORS:
            code, text = ENDPOINT_ERRORS[self.mode]
            err = ngrok_error(text, code)
            log("warn", "failed to start tunnel", pg=f"/api/{style}", id=uuid.uuid4().hex[:16], err=err)
            return 502, {"error_code": 103, "status_code": 502, "msg": "failed to start tunnel",
                         "details": {"err": err}}
        upstream = (spec.get("upstream") or {}).get("url") or spec.get("addr") or "80"
        split = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        host = "127.0.0.1" if split.hostname in (None, "localhost") else split.hostname
        port = _closed_port() if self.mode == "unreachable" else (split.port or 80)
        handler = type("Bound", (Forwarder,), {"target": (host, port)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        public = f"http://127.0.0.1:{server.server_address[1]}"
        record = {"id": f"ep_{uuid.uuid4().hex}", "name": name, "uri": f"/api/{style}/{name}", "public_url": public,
                  "proto": "http", "config": {"addr": upstream, "inspect": True}, "metrics": {}}
        if style == "endpoints":  # the 3.30 resource: url and upstream instead of public_url and config
            record = {"id": record["id"], "name": name, "uri": record["uri"], "url": public,
                      "upstream": {"url": upstream, "protocol": "http1"}, "metrics": {}}
        with self.lock:
            self.endpoints[name] = record
            self.servers[name] = server
        log("info", "started tunnel", obj="tunnels", name=name, addr=upstream, url=public)
        return 201, record

    def delete(self, name: str) -> bool:
        with self.lock:
            self.endpoints.pop(name, None)
            server = self.servers.pop(name, None)
        if server is None:
            return False
        server.shutdown()
        server.server_close()
        return True

    def lose_session(self) -> None:
        """The network went away: the session closes, forwarding stops, reconnects fail each second."""
        if not self.online:
            return
        self.online = False
        log("eror", "session closing", obj="tunnels.session", err="read tcp 10.0.0.2:51234->3.20.27.198:443: "
            "read: connection reset by peer")
        for name in list(self.servers):
            self.delete(name)
        threading.Thread(target=reconnect_forever, daemon=True).start()


def reconnect_forever() -> None:
    while True:
        log("eror", "failed to reconnect session", obj="tunnels.session", err=OFFLINE)
        time.sleep(RECONNECT_EVERY)


class Api(http.server.BaseHTTPRequestHandler):
    """The agent's local API (the subset pyngrok calls), with this release's paths only."""

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

    def _not_found(self) -> None:
        self._json(404, {"error_code": 100, "status_code": 404, "msg": "Not Found",
                         "details": {"path": self.path.split("?")[0]}})

    def _route(self) -> tuple[str, str | None]:
        parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
        style = parts[1] if len(parts) > 1 and parts[0] == "api" else ""
        return style, parts[2] if len(parts) > 2 else None

    def do_GET(self) -> None:
        style, name = self._route()
        if style == "status":
            return self._json(200, {"status": "online" if self.agent.online else "reconnecting"})
        if style not in self.agent.styles():
            return self._not_found()
        if name is None:
            items = list(self.agent.endpoints.values())
            return self._json(200, {style: items, "uri": f"/api/{style}"})
        found = self.agent.endpoints.get(name)
        return self._json(200, found) if found else self._not_found()

    def do_POST(self) -> None:
        style, _ = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        spec = json.loads(self.rfile.read(length) or b"{}")
        if style not in self.agent.styles():
            return self._not_found()
        return self._json(*self.agent.create(spec, style))

    def do_DELETE(self) -> None:
        style, name = self._route()
        if style not in self.agent.styles():
            return self._not_found()
        return self._json(204, None) if name and self.agent.delete(name) else self._not_found()


def _options(args: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        if arg.startswith("--") and arg != "--none":
            key, _, value = arg[2:].partition("=")
            opts[key] = value or next(it, "")
    return opts


def _read_config(path: str | None) -> dict:
    if not path or not os.path.exists(path):
        return {}
    import yaml  # pyngrok depends on PyYAML, so the test venv has it

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def _fail(err: str) -> int:
    """How an agent dies of an error from ngrok's service: four lines, then exit 1."""
    log("eror", "failed to reconnect session", obj="tunnels.session", err=err)
    log("eror", "session closing", obj="tunnels.session", err=err)
    log("eror", "terminating with error", obj="app", err=err)
    log("crit", "command failed", err=err)
    return 1


def _watch_parent() -> int:
    parent = os.getppid()
    while os.getppid() == parent:  # an orphaned agent exits instead of lingering
        time.sleep(0.2)
    return 0


def _serve_api(agent: Agent) -> http.server.ThreadingHTTPServer:
    Api.agent = agent
    if agent.mode == "web_in_use":
        log("warn", "can't bind default web address, trying alternatives", obj="web", addr="127.0.0.1:4040")
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()
    return api


def start(opts: dict[str, str]) -> int:
    mode = os.environ.get("FAKE_NGROK_MODE", "ok")
    version = os.environ.get("FAKE_NGROK_VERSION", CURRENT)
    state = os.environ.get("FAKE_NGROK_STATE")
    if state:
        with open(os.path.join(state, f"{os.getpid()}.pid"), "w", encoding="utf-8") as fh:
            fh.write(mode)
    config = _read_config(opts.get("config"))
    if str(config.get("version", "2")) == "3" and version_tuple(version) < CONFIG_V3_SINCE:
        log("crit", "command failed", err=f"Error reading configuration file '{opts.get('config')}': "
            "version 3 configuration files are supported from ngrok 3.16.0")
        return 1
    token = opts.get("authtoken") or (config.get("agent") or {}).get("authtoken") or config.get("authtoken")
    agent = Agent(mode, version)
    log("info", "open config file", path=opts.get("config", ""), err="nil")
    api = _serve_api(agent)
    log("info", "starting web service", obj="web", addr=f"127.0.0.1:{api.server_address[1]}", allow_hosts="[]")
    if mode == "crash":
        log("crit", "command failed", err="simulated crash")
        return 3
    if mode == "hang":
        return _watch_parent()
    if mode == "offline":
        threading.Thread(target=reconnect_forever, daemon=True).start()
        return _watch_parent()
    failure = "no_token" if not token else "update_required" if version_tuple(version) < (3,) else mode
    if failure in SESSION_ERRORS:
        code, text = SESSION_ERRORS[failure]
        return _fail(ngrok_error(text.format(token=token, version=version, major=version.split(".")[0]), code))
    log("info", "client session established", obj="tunnels.session")
    log("info", "tunnel session started", obj="tunnels.session")
    signal.signal(signal.SIGUSR1, lambda *_: agent.lose_session())
    return _watch_parent()


def main(argv: list[str]) -> int:
    args = argv[1:]
    if not args or args[0] in ("version", "--version", "-v"):
        print(f"ngrok version {os.environ.get('FAKE_NGROK_VERSION', CURRENT)}")
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

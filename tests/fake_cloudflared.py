#!/usr/bin/env python3
"""A stand-in ``cloudflared`` for tests: what ``cloudflared tunnel --url URL`` prints, and does.

It prints, on stderr, the log lines the real program prints for a quick tunnel (release
2024.x, zerolog's console format: ``<time> INF <message> key=value ...``), the boxed banner with
the tunnel's URL included; it then serves that URL on 127.0.0.1, forwarding every request to
``--url`` with the headers Cloudflare's edge adds, and logs ``Registered tunnel connection``. On
SIGTERM or SIGINT it logs its graceful shutdown, lets the requests in flight finish, and exits 0.
``--version`` prints its version.
The only difference from the real one is the URL: ``http://127.0.0.1:<port>`` instead of
``https://<words>.trycloudflare.com``. Stdlib only.

``FAKE_CLOUDFLARED_MODE`` picks a behaviour:
    ok            (default) works
    rate_limited  the quick-tunnel service answers 429 (error code 1015): the real lines, exit 1
    no_network    cannot reach api.trycloudflare.com: the real lines, exit 1
    hang          asks for a quick tunnel and never gets one (a start timeout)
    unreachable   prints a URL that refuses connections (a held, unlistened port)
    warming       the edge answers 530 (error 1033) to the first two requests, as while a
                  quick tunnel's connection comes up, then forwards
    drop          after forwarding one request, loses its connection to the edge (the real
                  error lines) and stops forwarding, but keeps running
    exit          after forwarding one request, exits with an error
``FAKE_CLOUDFLARED_STATE``, when set, is a directory where each tunnel writes ``<pid>.pid``.

Tests call ``install(directory, mode)`` to get an executable to pass as CLOUDFLARED_PATH.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

from fake_edge import EdgeHandler  # tests/fake_edge.py, beside this script

VERSION = "2024.8.2"
GRACE_PERIOD = 2.0  # seconds; cloudflared's own default is 30 s (--grace-period)
THANKS = ("Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to "
          "experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee, "
          "are subject to the Cloudflare Online Services Terms of Use (https://www.cloudflare.com/website-terms/), "
          "and Cloudflare reserves the right to investigate your use of Tunnels for violations of such terms. If "
          "you intend to use Tunnels in production you should use a pre-created named tunnel by following: "
          "https://developers.cloudflare.com/cloudflare-one/connections/connect-apps")
_lock = threading.Lock()
_held: list[socket.socket] = []


def install(directory: str, mode: str = "ok", state_dir: str | None = None) -> str:
    """Write an executable ``cloudflared`` running this script in ``mode``; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"cloudflared-{mode}")
    state = f'FAKE_CLOUDFLARED_STATE="{state_dir}" ' if state_dir else ""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\n"
                 f'{state}FAKE_CLOUDFLARED_MODE="${{FAKE_CLOUDFLARED_MODE:-{mode}}}" '
                 f'exec "{sys.executable}" "{os.path.abspath(__file__)}" "$@"\n')
    os.chmod(path, 0o755)
    return path


def log(level: str, message: str, **fields: object) -> None:
    """One line as cloudflared's console logger writes it (on stderr)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    with _lock:
        try:
            sys.stderr.write(f"{stamp} {level} {message}{extra}\n")
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass


def banner(url: str) -> None:
    """The box the real one draws around its URL (quick_tunnel.go's AsciiBox, padding 2)."""
    lines = ["Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):", url]
    width = max(len(line) for line in lines) + 4
    log("INF", "+" + "-" * width + "+")
    for line in lines:
        log("INF", "|  " + line.ljust(width - 2) + "|")
    log("INF", "+" + "-" * width + "+")


class Edge(EdgeHandler):
    """The tunnel's public side: forwards each request to the origin, as Cloudflare's edge does."""

    origin: tuple[str, int] = ("127.0.0.1", 0)
    state: dict[str, int] = {"requests": 0}  # noqa: RUF012 - one edge per process
    mode = "ok"
    down = threading.Event()
    closing = False
    in_flight = 0
    idle = threading.Condition()

    def _relay(self) -> None:
        with Edge.idle:
            if Edge.closing:  # shutting down: new requests are not taken
                self.close_connection = True
                return None
            Edge.in_flight += 1
        try:
            return self._relay_one()
        finally:
            with Edge.idle:
                Edge.in_flight -= 1
                Edge.idle.notify_all()

    def _relay_one(self) -> None:
        body = self.body()
        with _lock:
            Edge.state["requests"] += 1
            seen = Edge.state["requests"]
        if Edge.down.is_set() or (Edge.mode == "warming" and seen <= 2):
            return self.send(530, [("Content-Type", "text/plain")], b"error code: 1033")
        try:
            self.forward(Edge.origin, body, {
                "Cf-Connecting-Ip": self.client_address[0], "X-Forwarded-For": self.client_address[0],
                "X-Forwarded-Proto": "https", "Cf-Ray": f"{uuid.uuid4().hex[:16]}-AMS",
                "Cdn-Loop": "cloudflare; loops=1"})
        except OSError as exc:
            log("ERR", f'Request failed error="{exc}" connIndex=0 dest={self.path} event=0 ip=198.41.200.13 '
                       "type=http")
            return self.send(502, [("Content-Type", "text/plain")], b"Bad gateway")
        if Edge.mode in ("drop", "exit") and seen == 1:
            threading.Thread(target=_lose_the_edge, daemon=True).start()
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay


def _lose_the_edge() -> None:
    time.sleep(0.05)  # let the answer that triggered it reach the caller first
    log("ERR", 'Connection terminated error="timeout: no recent network activity" connIndex=0')
    log("ERR", 'Serve tunnel error error="timeout: no recent network activity" connIndex=0 event=0 '
               "ip=198.41.200.13")
    if Edge.mode == "exit":
        log("ERR", 'Initiating shutdown error="timeout: no recent network activity"')
        os._exit(1)
    Edge.down.set()
    log("INF", "Unregistered tunnel connection connIndex=0 event=0 ip=198.41.200.13")
    log("INF", "Retrying connection in up to 1s connIndex=0 event=0 ip=198.41.200.13")


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]


def _stop(signum: int, frame: object) -> None:
    """As cloudflared does: no new requests, the ones in flight finish (within its grace period,
    here shorter than g3w's wait before SIGKILL), then the connections are unregistered."""
    name = "terminated" if signum == signal.SIGTERM else "interrupt"
    log("INF", f"Initiating graceful shutdown due to signal {name} ...")
    Edge.closing = True
    with Edge.idle:
        Edge.idle.wait_for(lambda: Edge.in_flight == 0, timeout=GRACE_PERIOD)
    log("INF", "Unregistered tunnel connection connIndex=0 event=0 ip=198.41.200.13")
    log("INF", "Tunnel server stopped")
    log("INF", "Metrics server stopped")
    os._exit(0)


def _wait_forever() -> int:
    parent = os.getppid()
    while os.getppid() == parent:  # a safety net for the test machine: an orphan exits
        time.sleep(0.2)
    return 0


def tunnel(origin: str) -> int:
    mode = os.environ.get("FAKE_CLOUDFLARED_MODE", "ok")
    state = os.environ.get("FAKE_CLOUDFLARED_STATE")
    if state:
        with open(os.path.join(state, f"{os.getpid()}.pid"), "w", encoding="utf-8") as fh:
            fh.write(mode)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log("INF", THANKS)
    log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
    if mode == "rate_limited":
        log("ERR", 'Error unmarshaling QuickTunnel response: error code: 1015 error="invalid character \'e\' '
                   'looking for beginning of value" status_code="429 Too Many Requests"')
        sys.stderr.write("failed to unmarshal quick Tunnel: invalid character 'e' looking for beginning of value\n")
        return 1
    if mode == "no_network":
        sys.stderr.write('failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp: '
                         "lookup api.trycloudflare.com on 127.0.0.53:53: server misbehaving\n")
        return 1
    if mode == "hang":
        return _wait_forever()
    split = urlsplit(origin if "://" in origin else f"http://{origin}")
    Edge.origin, Edge.mode = (split.hostname or "127.0.0.1", split.port or 80), mode
    edge = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Edge)
    edge.daemon_threads = True
    threading.Thread(target=edge.serve_forever, args=(0.05,), daemon=True).start()
    port = _closed_port() if mode == "unreachable" else edge.server_address[1]
    banner(f"http://127.0.0.1:{port}")
    log("INF", "Cannot determine default configuration path. No file [config.yml config.yaml] in "
               "[~/.cloudflared ~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]")
    log("INF", f"Version {VERSION} (Checksum {uuid.uuid4().hex}{uuid.uuid4().hex})")
    log("INF", "GOOS: linux, GOVersion: go1.22.5, GoArch: amd64")
    log("INF", f"Settings: map[ha-connections:1 no-autoupdate:true protocol:quic url:{origin}]")
    log("INF", f"Generated Connector ID: {uuid.uuid4()}")
    log("INF", "Initial protocol quic")
    log("INF", "Starting metrics server on 127.0.0.1:20241/metrics")
    log("INF", f"Registered tunnel connection connIndex=0 connection={uuid.uuid4()} event=0 ip=198.41.200.13 "
               "location=ams08 protocol=quic")
    return _wait_forever()


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args[:1] in (["--version"], ["-v"], ["version"]):
        print(f"cloudflared version {VERSION} (built 2024-08-20-1254 UTC)")
        return 0
    if args[:1] == ["tunnel"] and "--url" in args:
        return tunnel(args[args.index("--url") + 1])
    sys.stderr.write(f"Incorrect Usage: flag provided but not defined: {' '.join(args)}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

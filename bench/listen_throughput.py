"""Signed deliveries per second `g3w listen --json --secret S` sustains on loopback, vs a bare handler.

Both servers run as subprocesses on 127.0.0.1 and get the same load from this process: CONNS
concurrent keep-alive connections posting N signed Get3W callbacks, each for a new task id (so
every one is unique, verified, printed as JSON and counted). The bare handler is a minimal
aiohttp app that reads the body and answers 200. Reports deliveries/s, p50 and p99 latency.

Goal (issue 3): g3w listen >= 0.5 of the bare handler. Run: python bench/listen_throughput.py
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp

SECRET = "bench-secret"  # noqa: S105 - not a secret: a fixed test value or a URL
BARE_SERVER = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def payload(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": f"pred_bench{i:08d}", "model": "get3w/flux-dev", "status": "completed",
                       "outputs": [f"https://cdn.example/{i}.png"]}).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Get3W-Signature": sig}


async def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


async def load(url: str, total: int, conns: int) -> tuple[float, list[float]]:
    bodies = [payload(i) for i in range(total)]
    latencies: list[float] = []
    next_index = 0
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal next_index
            while next_index < total:
                body, headers = bodies[next_index]
                next_index += 1
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return time.perf_counter() - start, latencies


def run_one(label: str, argv: list[str], port: int, total: int, conns: int) -> float:
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        try:
            asyncio.run(wait_ready(port))
            elapsed, lat = asyncio.run(load(f"http://127.0.0.1:{port}/hook", total, conns))
            time.sleep(0.5)  # let the last lines reach the file
        finally:
            proc.terminate()
            proc.wait(10)
        out.seek(0)
        printed = sum(1 for _ in out)
    if "listen" in argv and printed != total:
        raise RuntimeError(f"g3w listen printed {printed} events for {total} unique deliveries")
    lat.sort()
    rate = total / elapsed
    print(f"{label:<28} {rate:8.0f} deliveries/s   p50 {lat[len(lat) // 2] * 1000:6.2f} ms"
          f"   p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:6.2f} ms   (n={total}, conns={conns})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--conns", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    bare = run_one("bare aiohttp handler", [sys.executable, "-c", BARE_SERVER, str(port)], port, args.n, args.conns)
    port = free_port()
    ours = run_one("g3w listen --json --secret", [sys.executable, "-m", "get3w_cli", "listen", "--port", str(port),
                   "--json", "--secret", SECRET, "--provider", "get3w", "--tunnel", "none"], port, args.n, args.conns)
    print(f"ratio                        {ours / bare:.2f}  (goal >= 0.5)")


if __name__ == "__main__":
    main()

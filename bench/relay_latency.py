"""What the relay costs and saves (issue 10): start-up to the paid submit, and each callback's trip.

1. From `g3w run` starting to its submit POST reaching the provider (a sandbox in this process
   records the instant): borrowing a running relay vs opening a fresh tunnel of its own (the
   stand-in ngrok agent of tests/fake_ngrok.py, driven through pyngrok as for real). Both check
   their public URL end to end before submitting.
2. A callback's trip, from the provider's POST to its answer (the delivery classified and queued
   in the waiting process's inbox): straight to a run's own listener vs through a relay running in
   another process (`g3w relay --detach --tunnel none`) to a borrower in this process.

Goal: the relay adds <= 5 ms to the median callback.
Run: python bench/relay_latency.py [--runs N] [--posts N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from get3w_cli.sandbox import Sandbox, SandboxOptions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fake_ngrok  # the tests' stand-in agent, found through the path set just above

SECRET = "bench-secret"  # noqa: S105 - not a secret: a fixed test value


class SandboxThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(SandboxOptions(duration=0.05, webhook_time_scale=0.01, webhook_secret=SECRET))
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.sandbox.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sandbox.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def g3w(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "get3w_cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def to_submit(sb: SandboxThread, env: dict[str, str]) -> float:
    """Seconds from starting `g3w run` to its submit POST reaching the sandbox."""
    before = len(sb.sandbox.submissions())
    started = time.monotonic()  # the sandbox's loop clock is time.monotonic too
    done = g3w("run", "flux-dev", "-p", "bench", "--json", "-q", "--no-history", "--via", "webhook", env=env)
    if done.returncode != 0:
        raise SystemExit(f"g3w run failed: {done.stderr}")
    submit = sb.sandbox.submissions()[before]
    return submit.at - started


def startup(runs: int, home: Path) -> None:
    sb = SandboxThread()
    agent = fake_ngrok.install(str(home / "bin"), mode="ok")
    env = dict(os.environ, G3W_HOME=str(home), GET3W_BASE_URL=sb.sandbox.base_url, GET3W_API_KEY="sk_bench",
               GET3W_WEBHOOK_SECRET=SECRET, NGROK_PATH=agent, NGROK_AUTHTOKEN="bench-token")
    try:
        fresh = [to_submit(sb, env) for _ in range(runs)]
        started = g3w("relay", "--detach", "--tunnel", "ngrok", env=env)
        if started.returncode != 0:
            raise SystemExit(f"g3w relay failed: {started.stderr}")
        try:
            relayed = [to_submit(sb, env) for _ in range(runs)]
        finally:
            g3w("relay", "stop", env=env)
    finally:
        sb.close()
    for label, values in (("own stand-in tunnel", fresh), ("borrowing the relay", relayed)):
        print(f"run start -> submit POST, {label:<20} median {statistics.median(values) * 1000:7.0f} ms   "
              f"min {min(values) * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms   runs={runs}")


async def trips(url: str, posts: int) -> list[float]:
    """Each POST's round trip (s): signed, a distinct task each, on one kept-alive connection."""
    from aiohttp import ClientSession

    from get3w_cli.webhooks.signatures import sign_get3w

    times = []
    async with ClientSession() as session:
        for i in range(posts):
            body = json.dumps({"id": f"pred_{i}", "model": "get3w/flux-dev", "status": "completed",
                               "outputs": ["https://cdn.example/a.png"]}).encode()
            headers = {"X-Get3W-Signature": sign_get3w(SECRET, body), "Content-Type": "application/json"}
            begun = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"callback answered {response.status}")
            times.append(time.perf_counter() - begun)
    return times


async def callbacks(posts: int, home: Path) -> None:
    from get3w_cli.webhooks.endpoint import CallbackEndpoint
    from get3w_cli.webhooks.inbox import Inbox
    from get3w_cli.webhooks.listener import CallbackListener
    from get3w_cli.webhooks.relay_client import RelayLink
    from get3w_cli.webhooks.relay_state import read_info

    async with CallbackListener(Inbox(), secrets={"get3w": SECRET}) as listener:
        direct = await trips(listener.local_url, posts)
    env = dict(os.environ, G3W_HOME=str(home))
    started = await asyncio.to_thread(g3w, "relay", "--detach", "--tunnel", "none", env=env)
    if started.returncode != 0:
        raise SystemExit(f"g3w relay failed: {started.stderr}")
    try:
        info = read_info(home)
        assert info is not None
        endpoint = CallbackEndpoint(Inbox(), secrets={"get3w": SECRET})
        link = RelayLink(info, endpoint)
        await link.open()
        try:
            relayed = await trips(endpoint.callback_url(info.public_url), posts)
        finally:
            await link.close()
    finally:
        await asyncio.to_thread(g3w, "relay", "stop", env=env)
    medians = {}
    for label, values in (("straight to the listener", direct), ("through the relay", relayed)):
        values.sort()
        medians[label] = statistics.median(values) * 1000
        print(f"callback trip, {label:<25} median {medians[label]:6.2f} ms   "
              f"p90 {values[int(0.9 * (len(values) - 1))] * 1000:6.2f} ms   posts={posts}")
    added = medians["through the relay"] - medians["straight to the listener"]
    print(f"the relay adds {added:.2f} ms to the median callback (goal: <= 5 ms)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="g3w runs for each start-up figure")
    parser.add_argument("--posts", type=int, default=500, help="callbacks for each trip figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="g3w-bench-") as folder:
        startup(args.runs, Path(folder) / "startup")
        asyncio.run(callbacks(args.posts, Path(folder) / "callbacks"))


if __name__ == "__main__":
    main()

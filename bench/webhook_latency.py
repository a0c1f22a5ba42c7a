"""Latency from the sandbox finishing a task to `g3w run` printing it: webhook vs poll, one run.

For each run, a real `g3w run ... --json` subprocess talks to a sandbox serving in this process;
latency = the moment its JSON line reaches us minus the task's completed_at (ms precision).
Also counts the API calls each task cost (submit + GETs): goal 1 when signed, 2 when unsigned.

Goal (issue 3): webhook median <= 50 ms; at most 2 API calls per task.
Run: python bench/webhook_latency.py [--runs N] [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime

from get3w_cli.sandbox import Sandbox, SandboxOptions

SECRET = "bench-secret"  # noqa: S105 - not a secret: a fixed test value or a URL
API_PREFIXES = ("/api/", "/v1/")


class SandboxThread:
    def __init__(self, options: SandboxOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(options)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.sandbox.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sandbox.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def api_calls(sandbox: Sandbox, task_id: str) -> int:
    """Requests to API paths that concern this task (its submit answer named it; GETs name it)."""
    calls = [r for r in sandbox.requests if r.path.startswith(API_PREFIXES)]
    gets = sum(1 for r in calls if task_id in r.path)
    return 1 + gets  # the submit, plus every GET of the task


def one_run(sb: SandboxThread, mode: str, duration: float, env: dict[str, str]) -> tuple[float, int]:
    args = [sys.executable, "-m", "get3w_cli", "run", "flux-dev", "-p", "bench", "--json", "-q", "--no-history",
            "-i", f"sandbox_duration={duration}", "--via", mode, "--fallback-after", "30s"]
    if mode == "webhook":
        args += ["--webhook-secret", SECRET] if env.get("SIGNED") else []
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    seen = time.time()
    proc.wait(30)
    record = json.loads(line)
    done = datetime.fromisoformat(record["completed_at"].replace("Z", "+00:00")).timestamp()
    return (seen - done) * 1000, api_calls(sb.sandbox, record["id"])


def measure(label: str, mode: str, runs: int, duration: float, secret: str | None) -> None:
    sb = SandboxThread(SandboxOptions(duration=duration, webhook_secret=secret))
    env = dict(os.environ, GET3W_BASE_URL=sb.sandbox.base_url, GET3W_API_KEY="sk_bench")
    if secret:
        env["SIGNED"] = "1"
    try:
        results = [one_run(sb, mode, duration, env) for _ in range(runs)]
    finally:
        sb.close()
    lat = sorted(r[0] for r in results)
    calls = [r[1] for r in results]
    print(f"{label:<22} median {statistics.median(lat):7.1f} ms   p90 {lat[int(0.9 * (len(lat) - 1))]:7.1f} ms"
          f"   api calls/task max {max(calls)} (median {statistics.median(calls):g})   runs={runs}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--duration", type=float, default=1.7, help="task duration in the sandbox (s)")
    args = parser.parse_args()
    measure("webhook (signed)", "webhook", args.runs, args.duration, SECRET)
    measure("webhook (unsigned)", "webhook", args.runs, args.duration, None)
    measure("poll", "poll", args.runs, args.duration, None)
    print("goal: webhook median <= 50 ms; api calls/task <= 2 (1 when signed)")


if __name__ == "__main__":
    main()

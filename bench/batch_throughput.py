"""Throughput and memory of ``g3w batch`` against the sandbox, next to a floor measured in the same run.

    /tmp/v/bin/python bench/batch_throughput.py [--tasks 1000] [--jobs 64] [--memory-tasks 10000]

Each measurement gets a fresh sandbox (``g3w sandbox``, zero-duration tasks, signed webhooks)
in its own process, so the client under test has a core to itself on a 2-core machine.

- floor: a minimal aiohttp script (this file with ``--floor``) that does the same submits
  (Get3W v3, ``webhook_url``), keeps at most ``--jobs`` tasks in flight, receives the same
  signed callbacks and checks their signatures; it keeps no journal and writes nothing.
- g3w: ``g3w batch FILE -j JOBS --via webhook --out FILE -q`` with the webhook secret set, so
  every callback is verified and each task costs one API call.

Times are the wall time of each client process, start-up included; peak memory is the
client's maximum RSS (``wait4``). Goals: g3w >= 0.5 x floor, >= 200 tasks/s, and
<= 150 MB peak RSS for 10,000 lines.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret"
KEY = "sk_bench"
MODEL_PATH = "/api/v3/get3w/flux-dev"
GOAL_RATIO, GOAL_RATE, GOAL_MB = 0.5, 200.0, 150.0


# --- the floor: the least a client must do ---------------------------------------------------


async def floor(base_url: str, tasks: int, jobs: int) -> None:
    from aiohttp import ClientSession, web

    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[None]] = {}
    early: set[str] = set()

    async def on_callback(request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Get3W-Signature", "")):
            return web.Response(status=401)
        task_id = json.loads(body)["id"]
        future = waiting.pop(task_id, None)
        if future is None:
            early.add(task_id)  # the callback beat the submit answer
        elif not future.done():
            future.set_result(None)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", on_callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    slots = asyncio.Semaphore(jobs)

    async def one(session: ClientSession, index: int) -> None:
        async with slots:
            body = {"prompt": f"task {index}", "sandbox_duration": 0, "webhook_url": hook}
            async with session.post(base_url + MODEL_PATH, json=body) as response:
                task_id = (await response.json())["data"]["id"]
            if task_id in early:
                early.discard(task_id)
                return
            future = waiting[task_id] = loop.create_future()
            await future

    async with ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        await asyncio.gather(*(one(session, i) for i in range(tasks)))
    await runner.cleanup()


# --- the harness -----------------------------------------------------------------------------


class SandboxProcess:
    """``g3w sandbox`` on a free port in its own process."""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "get3w_cli", "sandbox", "--port", "0", "--duration", "0",
             "--webhook-secret", SECRET, "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one client process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0,):
        print(stderr, file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def write_lines(path: Path, tasks: int) -> None:
    with path.open("w") as out:
        for index in range(tasks):
            out.write(json.dumps({"model": "flux-dev", "input": {"prompt": f"task {index}", "sandbox_duration": 0}}) + "\n")


def run_floor(tasks: int, jobs: int) -> tuple[float, float]:
    with SandboxProcess() as base_url:
        wall, rss, code = measure([sys.executable, __file__, "--floor", base_url, "--tasks", str(tasks),
                                   "--jobs", str(jobs)], dict(os.environ))
    assert code == 0, "the floor script failed"
    return tasks / wall, rss


def run_g3w(tasks: int, jobs: int, work: Path) -> tuple[float, float, int]:
    lines, out = work / f"lines-{tasks}.jsonl", work / f"out-{tasks}.jsonl"
    write_lines(lines, tasks)
    with SandboxProcess() as base_url:
        env = dict(os.environ, GET3W_BASE_URL=base_url, GET3W_API_KEY=KEY, GET3W_WEBHOOK_SECRET=SECRET,
                   G3W_HOME=str(work / f"home-{tasks}"))
        wall, rss, code = measure([sys.executable, "-m", "get3w_cli", "batch", str(lines), "-j", str(jobs),
                                   "--via", "webhook", "--out", str(out), "-q"], env)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    complete = sum(1 for r in records if r["status"] == "completed" and r["via"] == "webhook")
    assert code == 0 and complete == tasks, f"g3w batch: exit {code}, {complete}/{tasks} completed via webhook"
    return tasks / wall, rss, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--memory-tasks", type=int, default=10_000)
    parser.add_argument("--floor", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        asyncio.run(floor(args.floor, args.tasks, args.jobs))
        return 0
    with tempfile.TemporaryDirectory(prefix="g3w-bench-") as tmp:
        work = Path(tmp)
        floor_rate, floor_rss = run_floor(args.tasks, args.jobs)
        rate, rss, _ = run_g3w(args.tasks, args.jobs, work)
        big_rate, big_rss, _ = run_g3w(args.memory_tasks, args.jobs, work) if args.memory_tasks else (0.0, 0.0, 0)
    ratio = rate / floor_rate
    print(f"floor (aiohttp)   {args.tasks:>6} tasks  -j {args.jobs}: {floor_rate:7.1f} tasks/s  peak {floor_rss:6.1f} MB")
    print(f"g3w batch         {args.tasks:>6} tasks  -j {args.jobs}: {rate:7.1f} tasks/s  peak {rss:6.1f} MB"
          f"  ({ratio:.2f} x floor)")
    if args.memory_tasks:
        print(f"g3w batch         {args.memory_tasks:>6} tasks  -j {args.jobs}: {big_rate:7.1f} tasks/s  peak {big_rss:6.1f} MB")
    goals = [(ratio >= GOAL_RATIO, f">= {GOAL_RATIO} x floor"), (rate >= GOAL_RATE, f">= {GOAL_RATE:g} tasks/s")]
    if args.memory_tasks:
        goals.append((big_rss <= GOAL_MB, f"<= {GOAL_MB:g} MB for {args.memory_tasks} lines"))
    for met, goal in goals:
        print(f"  {'met ' if met else 'MISSED'} {goal}")
    return 0 if all(met for met, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())

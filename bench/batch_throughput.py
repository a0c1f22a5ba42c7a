"""Throughput and memory of ``g3w batch`` against the sandbox, next to a floor measured in the same run.

    /tmp/v/bin/python bench/batch_throughput.py [--tasks 1000] [--jobs 64] [--memory-tasks 10000]

Each measurement gets a fresh sandbox (``g3w sandbox``, zero-duration tasks, signed webhooks)
in its own process, so the client under test has a core to itself on a 2-core machine.

- floor: a minimal aiohttp script (this file with ``--floor``) that does the same submits
  (Get3W v3, ``webhook_url``), keeps at most ``--jobs`` tasks in flight, receives the same
  signed callbacks and checks their signatures; it keeps no journal and writes nothing.
- g3w: ``g3w batch FILE -j JOBS --via webhook --out FILE -q`` with the webhook secret set, so
  every callback is verified and each task costs one API call.

Every process runs with bytecode caching on (``PYTHONPYCACHEPREFIX`` in the work directory,
filled by a warm-up run of each client), as after ``pip install``: a development checkout
under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile g3w's modules at every start.

Rates are tasks per second of each client process's wall time, start-up included, best of
``--repeat`` runs (other processes on the machine only ever slow a run down); CPU time per
task and peak memory (maximum RSS) come from ``wait4``. Goals: g3w >= 0.5 x floor, >= 200
tasks/s, and <= 150 MB peak RSS for 10,000 lines. Exit 1 when a goal is missed.
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
from dataclasses import dataclass
from pathlib import Path

SECRET = "bench-secret"  # noqa: S105 - not a secret: a fixed test value or a URL
KEY = "sk_bench"
MODEL_PATH = "/api/v3/get3w/flux-dev"
GOAL_RATIO, GOAL_RATE, GOAL_MB = 0.5, 200.0, 150.0
WARM_UP_TASKS = 10


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


@dataclass(frozen=True)
class Run:
    rate: float  # tasks per second of wall time, start-up included
    cpu_ms: float  # CPU milliseconds (user + system) a task, start-up included
    rss_mb: float  # peak resident memory


def measure(argv: list[str], env: dict[str, str], tasks: int) -> Run:
    """Run one client process to its end; fail loudly if it did not exit 0."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: nothing can block the client
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        assert code == 0, f"{argv[1:4]} exited {code}: {errors.read().decode(errors='replace')}"
    cpu = usage.ru_utime + usage.ru_stime
    return Run(tasks / wall, 1000 * cpu / tasks, usage.ru_maxrss / 1024)


def write_lines(path: Path, tasks: int) -> None:
    with path.open("w") as out:
        for index in range(tasks):
            line = {"model": "flux-dev", "input": {"prompt": f"task {index}", "sandbox_duration": 0}}
            out.write(json.dumps(line) + "\n")


def run_floor(tasks: int, jobs: int) -> Run:
    with SandboxProcess() as base_url:
        return measure([sys.executable, __file__, "--floor", base_url, "--tasks", str(tasks), "--jobs", str(jobs)],
                       dict(os.environ), tasks)


def run_g3w(tasks: int, jobs: int, work: Path, attempt: int) -> Run:
    lines, out = work / f"lines-{tasks}.jsonl", work / f"out-{tasks}.jsonl"
    if not lines.exists():
        write_lines(lines, tasks)
    with SandboxProcess() as base_url:
        env = dict(os.environ, GET3W_BASE_URL=base_url, GET3W_API_KEY=KEY, GET3W_WEBHOOK_SECRET=SECRET,
                   G3W_HOME=str(work / f"home-{tasks}-{attempt}"))
        run = measure([sys.executable, "-m", "get3w_cli", "batch", str(lines), "-j", str(jobs),
                       "--via", "webhook", "--out", str(out), "-q"], env, tasks)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    complete = sum(1 for r in records if r["status"] == "completed" and r["via"] == "webhook")
    assert complete == tasks, f"g3w batch: {complete}/{tasks} completed via webhook"
    return run


def best(runs: list[Run]) -> Run:
    """The fastest rate and least CPU seen, and the largest memory: other processes only slow a run."""
    return Run(max(r.rate for r in runs), min(r.cpu_ms for r in runs), max(r.rss_mb for r in runs))


def show(name: str, tasks: int, jobs: int, run: Run, extra: str = "") -> None:
    print(f"{name:<17} {tasks:>6} tasks -j {jobs}: {run.rate:7.1f} tasks/s  {run.cpu_ms:5.2f} ms CPU/task"
          f"  peak {run.rss_mb:6.1f} MB{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--memory-tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each client; the best counts")
    parser.add_argument("--floor", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        asyncio.run(floor(args.floor, args.tasks, args.jobs))
        return 0
    with tempfile.TemporaryDirectory(prefix="g3w-bench-") as tmp:
        work = Path(tmp)
        os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")  # every process below inherits it
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        run_floor(WARM_UP_TASKS, args.jobs)  # fills the bytecode cache of both clients
        run_g3w(WARM_UP_TASKS, args.jobs, work, -1)
        floor_runs, g3w_runs = [], []
        for attempt in range(args.repeat):  # interleaved, so a busy moment hits both alike
            floor_runs.append(run_floor(args.tasks, args.jobs))
            g3w_runs.append(run_g3w(args.tasks, args.jobs, work, attempt))
        base, ours = best(floor_runs), best(g3w_runs)
        big = run_g3w(args.memory_tasks, args.jobs, work, 0) if args.memory_tasks else None
    ratio = ours.rate / base.rate
    show("floor (aiohttp)", args.tasks, args.jobs, base)
    show("g3w batch", args.tasks, args.jobs, ours, f"  ({ratio:.2f} x floor)")
    goals = [(ratio >= GOAL_RATIO, f">= {GOAL_RATIO} x floor"), (ours.rate >= GOAL_RATE, f">= {GOAL_RATE:g} tasks/s")]
    if big is not None:
        show("g3w batch", args.memory_tasks, args.jobs, big)
        goals.append((big.rss_mb <= GOAL_MB, f"<= {GOAL_MB:g} MB for {args.memory_tasks} lines"))
    for met, goal in goals:
        print(f"  {'met   ' if met else 'MISSED'} {goal}")
    return 0 if all(met for met, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())

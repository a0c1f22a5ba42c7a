"""Start-up time of every command, side by side with a floor measured in the same run.

Each g3w command runs as a whole process against a local sandbox (so the network costs nothing)
and is timed against the floor ``python -c "import typer, httpx"`` (``g3w --help`` against
``python -c "import typer"``), interleaved so that load changes hit both alike: the ratio is the
median of each round's command time over that round's floor. Every process gets a warm bytecode
cache, as a `pip install` would leave it.

Goals (issue #9): get and submit <= 1.5x, history and config list <= 1.3x, --help <= 1.6x.
Run: python bench/startup.py [--runs N] [--only get,submit]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
# What the installed `g3w` script runs (pip's console-script wrapper), without needing it on PATH;
# `python -m get3w_cli` would add runpy's imports, which the installed command does not pay.
ENTRY_POINT = "import sys; from get3w_cli.cli import main; sys.exit(main())"
GOALS = {"get": 1.5, "submit": 1.5, "history": 1.3, "config list": 1.3, "--help": 1.6}


def once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def start_sandbox(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "sandbox", "--port", "0", "--duration", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def commands(env: dict[str, str]) -> dict[str, list[str]]:
    g3w = [sys.executable, "-c", ENTRY_POINT]
    task_id = subprocess.run([*g3w, "submit", "flux-dev", "-p", "x"], capture_output=True, text=True, env=env,
                             check=True).stdout.strip()
    return {
        "--help": [*g3w, "--help"],
        "get": [*g3w, "get", task_id],
        "submit": [*g3w, "submit", "flux-dev", "-p", "a cat"],
        "cancel": [*g3w, "cancel", task_id],  # finished: looks, then refuses (exit 2)
        "wait": [*g3w, "wait", task_id],
        "history": [*g3w, "history"],
        "config list": [*g3w, "config", "list"],
        "models": [*g3w, "models"],
        "balance": [*g3w, "balance"],
        "doctor": [*g3w, "doctor"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--only", default="", help="comma-separated commands (default: all)")
    args = parser.parse_args()
    runs, only = args.runs, [name for name in args.only.split(",") if name]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "G3W_HOME": home, "G3W_CONFIG": str(Path(home) / "config.toml"),
               "PYTHONPYCACHEPREFIX": str(Path(home) / "pycache"), "GET3W_API_KEY": "sk_bench",
               "ABSTRAKT_API_KEY": "sk_bench", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        sandbox, url = start_sandbox(env)
        try:
            env.update(GET3W_BASE_URL=url, ABSTRAKT_BASE_URL=url)
            cmds = commands(env)
            report({name: argv for name, argv in cmds.items() if not only or name in only}, env, runs)
        finally:
            sandbox.terminate()
            sandbox.wait()


def report(cmds: dict[str, list[str]], env: dict[str, str], runs: int) -> None:
    floors = {"typer": [sys.executable, "-c", "import typer"],
              "typer+httpx": [sys.executable, "-c", "import typer, httpx"]}
    times: dict[str, list[float]] = {name: [] for name in [*floors, *cmds]}
    for argv in [*floors.values(), *cmds.values()]:
        once(argv, env)  # warm the file and bytecode caches
    for _ in range(runs):
        for name, argv in [*floors.items(), *cmds.items()]:
            times[name].append(once(argv, env))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{'command':<14}{'median ms':>10}{'floor':>14}{'ratio':>8}{'goal':>7}   (runs={runs})")
    for name in floors:
        print(f"{'floor ' + name:<14}{median[name] * 1000:>10.1f}")
    for name in cmds:
        floor = "typer" if name == "--help" else "typer+httpx"
        ratio = statistics.median(mine / base for mine, base in zip(times[name], times[floor], strict=True))
        goal = f"<={GOALS[name]}" if name in GOALS else ""
        print(f"{name:<14}{median[name] * 1000:>10.1f}{floor:>14}{ratio:>8.2f}{goal:>7}")


if __name__ == "__main__":
    main()

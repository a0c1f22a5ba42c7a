"""Start-up time: median of `g3w --help` against `python -c "import typer"`, interleaved.

Goal (issue 2): ratio <= 1.6. Run: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

RUNS = 30


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=RUNS)
    runs = parser.parse_args().runs
    g3w = [sys.executable, "-c", "import sys; sys.argv=['g3w','--help']; from get3w_cli.cli import main; main()"]
    baseline = [sys.executable, "-c", "import typer"]
    once(g3w), once(baseline)  # warm the file cache
    ours, base = [], []
    for _ in range(runs):  # interleaved, so load changes hit both alike
        ours.append(once(g3w))
        base.append(once(baseline))
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"g3w --help       median {m_ours * 1000:7.1f} ms  (runs={runs})")
    print(f"import typer     median {m_base * 1000:7.1f} ms")
    print(f"ratio            {m_ours / m_base:.2f}  (goal <= 1.6)")


if __name__ == "__main__":
    main()

"""Time ``goalkeeper analyze`` on all 200 tau-bench airline trajectories (budget: 10 s).

The baseline row is ``goalkeeper import`` of the same file (reading and converting only), so the
difference is the analysis itself. Run: ``python benchmarks/analyze_tau_bench.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau-bench-airline" / "gpt-4o-airline.json"


def _time(args: list[str], repeats: int = 3) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "goalkeeper.cli", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    if not DATA.exists():
        sys.exit(f"missing {DATA}")
    rows = [
        ("baseline: import (read + convert)", _time(["import", str(DATA)])),
        ("analyze (200 trajectories)", _time(["analyze", str(DATA)])),
    ]
    print("| command | best s | median s | budget s |")
    print("|---|---:|---:|---:|")
    for name, runs in rows:
        print(f"| {name} | {min(runs):.2f} | {statistics.median(runs):.2f} | 10 |")


if __name__ == "__main__":
    main()

"""Parse throughput over the real-world corpus, and start-up time of ``pybuild --version``.

Run: ``python bench/parse_throughput.py``. Throughput is measured in one warm
process (the grammar is compiled before timing starts); start-up is the
median wall time of fresh ``pybuild --version`` processes.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.instructions.parse import parse_containerfile  # noqa: E402
from builder.syntax import grammar  # noqa: E402


def throughput(rounds: int = 3) -> tuple[int, int, float]:
    files = [(str(p), p.read_bytes()) for p in sorted(
        (REPO / "fixtures" / "corpus" / "real-world").rglob("*.Dockerfile"))]
    grammar.parser()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for path, data in files:
            parse_containerfile(data, path)
        best = min(best, time.perf_counter() - started)
    return len(files), sum(len(d) for _, d in files), best


def startup(runs: int = 15) -> float:
    command = [shutil.which("pybuild") or sys.executable, "--version"]
    if not command[0].endswith("pybuild"):
        command = [sys.executable, "-m", "builder", "--version"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    count, size, seconds = throughput()
    print(f"parse: {count} files, {size / 1e6:.2f} MB in {seconds:.3f}s = "
          f"{count / seconds:.0f} files/s ({size / seconds / 1e6:.2f} MB/s)")
    print(f"startup: pybuild --version median {startup() * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

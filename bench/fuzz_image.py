"""Fuzz image parsing: >= 10,000 examples per target by default.

Run: ``python bench/fuzz_image.py [EXAMPLES]``. Targets: ``Manifest``,
``Index``, ``ImageConfig`` and ``Descriptor.from_json`` on random and mutated
documents (only PybuildError may escape; what parses re-serialises stably),
and ``extract_layer`` on random and corrupted tar streams, including PAX
numbers out of the system's range. Parser failures stop the run (exit 1);
for the extractor every distinct unexpected exception is counted and one
reproducer per kind is written to ``fuzz-image-repro/`` (exit 1 if any).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from reliability.strategies import (  # noqa: E402
    check_extract,
    check_parser,
    documents,
    layer_streams,
)


def fuzz_parser(kind: str, examples: int) -> int:
    count = 0

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(documents(kind))
    def fuzz(data: object) -> None:
        nonlocal count
        count += 1
        check_parser(kind, data)

    fuzz()
    return count


def fuzz_extract(examples: int, out: Path) -> tuple[int, dict[str, int]]:
    count = 0
    failures: dict[str, int] = {}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(layer_streams(extreme=True), st.sampled_from(["overlay", "apply"]))
    def fuzz(stream: tuple[bytes, str], whiteouts: str) -> None:
        nonlocal count
        count += 1
        try:
            check_extract(stream[0], stream[1], whiteouts)
        except Exception as exc:  # noqa: BLE001 - counted and kept as a reproducer
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if key not in failures:
                out.mkdir(exist_ok=True)
                name = f"{len(failures):02d}-{type(exc).__name__}"
                suffix = ".tar.gz" if stream[1].endswith("gzip") else ".tar"
                (out / (name + suffix)).write_bytes(stream[0])
                (out / (name + ".txt")).write_text(
                    f"{key}\nwhiteouts={whiteouts}\n{''.join(traceback.format_exception(exc))}")
            failures[key] = failures.get(key, 0) + 1

    fuzz()
    return count, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("examples", nargs="?", type=int, default=10_000,
                        help="examples per target (default 10,000)")
    examples = parser.parse_args().examples
    status = 0
    for kind in ("manifest", "index", "config", "descriptor"):
        started = time.perf_counter()
        count = fuzz_parser(kind, examples)
        print(f"fuzz_image: {kind}.from_json: {count} examples in "
              f"{time.perf_counter() - started:.1f}s, no unexpected exception")
    started = time.perf_counter()
    count, failures = fuzz_extract(examples, Path("fuzz-image-repro"))
    print(f"fuzz_image: extract_layer: {count} examples in {time.perf_counter() - started:.1f}s, "
          f"{sum(failures.values())} unexpected")
    for key, n in sorted(failures.items()):
        print(f"  {n:6d} x {key}")
        status = 1
    if failures:
        print("  reproducers in fuzz-image-repro/")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz image parsing: >= 10,000 examples per target by default.

Run: ``python bench/fuzz_image.py [EXAMPLES]``. Targets: ``Manifest``,
``Index``, ``ImageConfig`` and ``Descriptor.from_json`` on random and mutated
documents (only PybuildError may escape; what parses re-serialises stably),
and ``extract_layer`` and ``extract_archive`` (ADD's unpacking, onto a root with
symlinked parents) on random and corrupted tar streams, including PAX numbers out
of the system's range. Parser failures stop the run (exit 1); for the extractor
every distinct unexpected exception is counted and one reproducer per kind is
written to ``fuzz-image-repro/`` (exit 1 if any).
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
    check_unpack,
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


def fuzz_extract(examples: int, out: Path, target: str = "extract_layer"
                 ) -> tuple[int, dict[str, int]]:
    count = 0
    failures: dict[str, int] = {}
    modes = ["overlay", "apply"] if target == "extract_layer" else ["/", "/bin", "/host/sub"]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(layer_streams(extreme=True), st.sampled_from(modes))
    def fuzz(stream: tuple[bytes, str], mode: str) -> None:
        nonlocal count
        count += 1
        try:
            if target == "extract_layer":
                check_extract(stream[0], stream[1], mode)
            else:
                check_unpack(stream[0], stream[1], mode)
        except Exception as exc:  # noqa: BLE001 - counted and kept as a reproducer
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if key not in failures:
                out.mkdir(exist_ok=True)
                name = f"{target}-{len(failures):02d}-{type(exc).__name__}"
                suffix = ".tar.gz" if stream[1].endswith("gzip") else ".tar"
                (out / (name + suffix)).write_bytes(stream[0])
                (out / (name + ".txt")).write_text(
                    f"{key}\nmode={mode}\n{''.join(traceback.format_exception(exc))}")
            failures[key] = failures.get(key, 0) + 1

    fuzz()
    return count, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("examples", nargs="?", type=int, default=10_000,
                        help="examples per target (default 10,000)")
    parser.add_argument("--only", choices=["parsers", "extract_layer", "extract_archive"],
                        help="run one group of targets")
    args = parser.parse_args()
    examples = args.examples
    status = 0
    for kind in ("manifest", "index", "config", "descriptor"):
        if args.only not in (None, "parsers"):
            break
        started = time.perf_counter()
        count = fuzz_parser(kind, examples)
        print(f"fuzz_image: {kind}.from_json: {count} examples in "
              f"{time.perf_counter() - started:.1f}s, no unexpected exception")
    for target in ("extract_layer", "extract_archive"):
        if args.only not in (None, target):
            continue
        started = time.perf_counter()
        count, failures = fuzz_extract(examples, Path("fuzz-image-repro"), target)
        print(f"fuzz_image: {target}: {count} examples in "
              f"{time.perf_counter() - started:.1f}s, {sum(failures.values())} unexpected")
        for key, n in sorted(failures.items()):
            print(f"  {n:6d} x {key}")
            status = 1
        if failures:
            print("  reproducers in fuzz-image-repro/")
    return status


if __name__ == "__main__":
    sys.exit(main())

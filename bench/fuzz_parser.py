"""Fuzz the Containerfile parser: random and mutated corpus files, >= 10,000 examples.

Run: ``python bench/fuzz_parser.py [EXAMPLES]``. The property is the one of
``tests/instructions/test_fuzz.py``: only PybuildError subclasses are raised,
and whatever parses re-renders to a file that parses the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hypothesis import HealthCheck, given, settings  # noqa: E402
from instructions.strategies import containerfiles  # noqa: E402
from instructions.test_fuzz import check_one  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("examples", nargs="?", type=int, default=10_000,
                        help="examples per target (default 10,000)")
    examples = parser.parse_args().examples
    count = 0

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(containerfiles)
    def fuzz(text: str | bytes) -> None:
        nonlocal count
        count += 1
        check_one(text)

    started = time.perf_counter()
    fuzz()
    elapsed = time.perf_counter() - started
    print(f"fuzz_parser: {count} examples in {elapsed:.1f}s, no unexpected exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())

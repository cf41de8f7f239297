"""Measure importing an image from an ``oci:`` layout into a fresh store (cold store).

    python bench/import_cost.py [oci:DIR:REF] [--repeat N] [--stores DIR] [--repo CHECKOUT]

Without a reference the Debian base is made (or found) by
``bench/make-debian-base.sh /var/tmp/pybuild-debian-base``. Each round imports
into a new, empty store next to the others (same file system) through
``builder.store.transports.import_image``, which checks every blob (size, digest)
and every layer (decompressed once: diff_id, tar structure); the source
layout is read once beforehand so the page cache is warm for every round.
Prints each round and the median, in seconds. ``--repo`` imports the builder
package of another checkout (say, the one before a change) for comparison.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def debian_base() -> str:
    proc = subprocess.run(["bash", str(REPO / "bench" / "make-debian-base.sh"),
                           "/var/tmp/pybuild-debian-base"], check=True, capture_output=True,
                          text=True, cwd=REPO)
    return proc.stdout.strip().splitlines()[-1]


def warm(ref: str) -> int:
    """Read every file of the layout once; its size in bytes."""
    path = Path(ref.removeprefix("oci:").partition(":")[0])
    total = 0
    for blob in (path / "blobs" / "sha256").iterdir():
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("ref", nargs="?", help="oci:DIR:REF (default: the Debian base)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", type=Path, default=Path("/var/tmp"),
                        help="where the fresh stores are made")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose builder package is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    from builder.store import Store

    try:
        from builder.store.transports import import_image
    except ImportError:  # a checkout from before the store package had its transports
        from builder.transports import import_image  # type: ignore[no-redef]
    ref = args.ref or debian_base()
    size = warm(ref)
    times = []
    for round_ in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="import-cost-", dir=args.stores))
        try:
            store = Store(root)
            started = time.perf_counter()
            record = import_image(store, ref)
            elapsed = time.perf_counter() - started
        finally:
            shutil.rmtree(root, ignore_errors=True)
        times.append(elapsed)
        print(f"round {round_ + 1}: {elapsed:.2f} s ({len(record.manifest.layers)} layers, "
              f"{size / 1e6:.1f} MB of blobs)")
    print(f"import {ref}: median {statistics.median(times):.2f} s over {len(times)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())

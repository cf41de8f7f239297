"""Measure write_layer throughput (MB/s, files/s) on a directory tree.

    python bench/layer_throughput.py CONTEXT_DIR [--compression gzip,zstd,none] [--repeat N]

Each run writes one layer of the whole tree into a fresh OCI layout in a
temporary directory on the same file system as the tree; the best of
``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from builder.image.layer import tree_entries, write_layer
from builder.image.layout import Layout


def measure(tree: Path, compression: str, repeat: int) -> dict[str, float]:
    entries = tree_entries(tree)
    total = sum(os.lstat(e.source).st_size for e in entries if e.source and e.source.is_file())
    best = float("inf")
    size = 0
    for _ in range(repeat):
        out = Path(tempfile.mkdtemp(prefix="layer-bench-", dir=tree.parent))
        try:
            start = time.perf_counter()
            result = write_layer(tree_entries(tree), Layout(out), compression=compression)
            best = min(best, time.perf_counter() - start)
            size = result.size
        finally:
            shutil.rmtree(out)
    return {"seconds": best, "mb_per_s": total / best / 1e6, "files_per_s": len(entries) / best,
            "entries": len(entries), "input_mb": total / 1e6, "output_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--compression", default="gzip,zstd,none")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for compression in args.compression.split(","):
        r = measure(args.tree.resolve(), compression, args.repeat)
        print(f"{args.tree.name:<14} {compression:<5} {r['seconds']:7.2f} s "
              f"{r['mb_per_s']:8.1f} MB/s {r['files_per_s']:9.0f} files/s "
              f"({r['entries']} entries, {r['input_mb']:.1f} MB -> {r['output_mb']:.1f} MB)")


if __name__ == "__main__":
    main()

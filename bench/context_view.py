"""Measure what hiding ignored files from ``RUN --mount=type=bind`` costs on a large context.

    python bench/context_view.py [--files N] [--ignored M] [--dir DIR]

Makes a context of N kept files (100 per directory, 1 KiB each) plus M files in an
ignored ``node_modules/`` and an ignored ``*.log`` file per directory, then times
(best of three, page cache warm): listing the excluded entries below the context
(``contextview.hidden_below``), and making the view the step gets with an overlay
and whiteouts (root only), with a hard-linked copy (read-only mounts without
overlay) and with a real copy (writable mounts without overlay).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.executor import contextview  # noqa: E402
from builder.executor.copier import context_tree  # noqa: E402
from builder.ignore import IgnoreMatcher  # noqa: E402


def make_context(base: Path, files: int, ignored: int) -> Path:
    context = base / "context"
    data = b"x" * 1024
    for i in range(files):
        directory = context / "src" / f"d{i // 100:04d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
            (directory / "debug.log").write_bytes(data)
        (directory / f"f{i:06d}.py").write_bytes(data)
    for i in range(ignored):
        directory = context / "node_modules" / f"m{i // 100:04d}"
        if i % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:06d}.js").write_bytes(data)
    (context / ".containerignore").write_text("node_modules\n**/*.log\n")
    return context


def best(action: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--ignored", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="context-view-", dir=args.dir))
    try:
        context = make_context(base, args.files, args.ignored)
        matcher = IgnoreMatcher(["node_modules", "**/*.log"])
        tree_time = best(lambda: context_tree(context, matcher), 1)
        tree = context_tree(context, matcher)
        hidden: tuple[str, ...] = ()

        def list_hidden() -> None:
            nonlocal hidden
            hidden = contextview.hidden_below(tree, "")

        print(f"context: {args.files} kept files, {args.ignored + args.files // 100} "
              f"excluded; the ignore walk (done by every build with an ignore file) "
              f"{tree_time:.2f} s")
        print(f"hidden_below: {best(list_hidden):.3f} s ({len(hidden)} excluded entries)")

        def make(writable: bool) -> None:
            with contextview.view(context, hidden, writable=writable):
                pass

        if os.geteuid() == 0:
            print(f"view, overlay with whiteouts: {best(lambda: make(False)):.3f} s")
        real_overlay = contextview._overlay
        contextview._overlay = lambda *a: contextlib.nullcontext(None)  # type: ignore
        try:
            print(f"view, hard-linked copy (read-only): {best(lambda: make(False)):.3f} s")
            print(f"view, copy (writable): {best(lambda: make(True)):.3f} s")
        finally:
            contextview._overlay = real_overlay
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

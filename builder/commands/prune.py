"""``pybuild prune [--all]``: free space in the image store.

Removes dangling (unnamed) images, blobs no image uses, the build cache
(``RUN --mount=type=cache`` contents), what killed processes left behind, and
extracted layers no image needs (``--all``: every extracted layer; they are
extracted again when needed). Waits while other processes write to the store.
Prints what it freed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="also remove extracted layers that images still use")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.commands.images import human_size

    store = open_store(options.root)
    pruned = store.prune(all_layers=args.all)
    for image_id in pruned.images:
        print(f"deleted image {image_id.removeprefix('sha256:')[:12]}")
    parts = [f"{len(pruned.images)} dangling image{'s' * (len(pruned.images) != 1)}",
             f"{pruned.blobs} blob{'s' * (pruned.blobs != 1)} ({human_size(pruned.blob_bytes)})",
             f"{pruned.layers} extracted layer{'s' * (pruned.layers != 1)} "
             f"({human_size(pruned.layer_bytes)})",
             f"build cache ({human_size(pruned.cache_bytes)})"]
    if pruned.leftovers:
        parts.append(f"{pruned.leftovers} leftover{'s' * (pruned.leftovers != 1)}")
    print(f"freed {human_size(pruned.total)}: {', '.join(parts)}")
    return 0

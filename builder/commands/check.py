"""``pybuild check [--repair] [--quick]``: verify the image store's integrity.

Prints one line per problem and exits 1 when there are any, 0 when the store
is clean. ``--repair`` removes leftovers, corrupt blobs and unusable
references, then checks again.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--repair", action="store_true",
                        help="fix what can be fixed (damaged images lose their names)")
    parser.add_argument("--quick", action="store_true",
                        help="do not hash blobs (sizes and references only)")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.store.check import check_store, repair_store

    store = open_store(options.root, recover=False)
    if args.repair:
        for line in repair_store(store):
            print(line)
    report = check_store(store, verify=not args.quick)
    for problem in report.problems:
        print(problem)
    count = len(report.problems)
    print(f"checked {report.blobs} blob{'s' * (report.blobs != 1)} and {report.images} "
          f"image{'s' * (report.images != 1)}: "
          + (f"{count} problem{'s' * (count != 1)}" if count else "no problems"))
    return 0 if report.clean else 1

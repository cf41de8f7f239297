"""``pybuild containers [--json] [-q] [--notruncate]``: list working containers."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only IDs")
    parser.add_argument("--notruncate", action="store_true", help="print full IDs")
    parser.add_argument("-n", "--noheading", action="store_true", help="no heading line")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    import json

    from builder.commands import open_store
    from builder.store.containers import list_containers

    containers = list_containers(open_store(options.root))
    if args.json:
        print(json.dumps([{
            "id": c.id, "builder": True, "imageid": c.image_id.removeprefix("sha256:"),
            "imagename": c.image_name, "containername": c.name, "driver": c.driver,
            "mounted": c.mounted, "created": c.created,
        } for c in containers], indent=4))
        return 0
    width = 64 if args.notruncate else 12
    if args.quiet:
        for c in containers:
            print(c.id[:width])
        return 0
    rows = [(c.id[:width], "    *", c.image_id.removeprefix("sha256:")[:width], c.image_name,
             c.name) for c in containers]
    if not args.noheading:
        rows.insert(0, ("CONTAINER ID", "BUILDER", "IMAGE ID", "IMAGE NAME", "CONTAINER NAME"))
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0

"""``pybuild pull``: copy an image from a registry (or an archive) into the local store.

Prints the image ID. ``docker://REF`` and plain names go to a registry (short
names are resolved through registries.conf); ``oci:``, ``oci-archive:`` and
``docker-archive:`` sources are imported from disk.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

__all__ = ["add_arguments", "run"]

def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.registry.flags import add_registry_flags

    add_registry_flags(parser)
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="which image of a multi-platform index (default: this host's)")
    parser.add_argument("source", metavar="SRC", help="image to pull")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.registry.flags import registry_options
    from builder.store.transports import parse_transport

    store = open_store(options.root)
    transport, rest = parse_transport(args.source)
    if transport not in ("docker", "store"):
        from builder.store.transports import import_image

        record = import_image(store, args.source, [])
    else:
        from builder.store.transports import pull_image

        if not args.quiet:
            print(f"Trying to pull {args.source}...", file=sys.stderr)
        opts = registry_options(args, platform=args.platform)
        record = pull_image(store, rest, opts, quiet=args.quiet)
    print(record.id.removeprefix("sha256:"))
    return 0

"""``pybuild push IMAGE [DEST]``: copy a local image to a registry or an archive.

DEST is ``docker://REF`` or a plain ``host/repo:tag`` (a registry), or
``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE[:TAG]``.
Without DEST the image goes to the registry its own name points at. Prints
the manifest digest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

__all__ = ["add_arguments", "run"]

def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.registry.flags import add_registry_flags

    add_registry_flags(parser)
    parser.add_argument("-f", "--format", choices=["oci", "docker"],
                        help="manifest type to push (default: as stored)")
    parser.add_argument("--digestfile", type=Path, metavar="FILE",
                        help="write the pushed manifest's digest to FILE")
    parser.add_argument("image", metavar="IMAGE", help="local image")
    parser.add_argument("destination", metavar="DEST", nargs="?", help="where to push")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.registry.flags import registry_options
    from builder.store import normalize_name
    from builder.store.transports import parse_transport

    store = open_store(options.root)
    dest = args.destination or normalize_name(args.image)
    transport, rest = parse_transport(dest)
    if transport not in ("docker", "store"):
        from builder.store.transports import export_image

        def warn(text: str) -> None:
            print(f"WARN[0000] {text}", file=sys.stderr)

        print(export_image(store, args.image, dest, format=args.format, warn=warn))
        return 0
    from builder.store.transports import push_image

    def report(line: str) -> None:
        print(line, file=sys.stderr)

    digest = push_image(
        store, args.image, rest, registry_options(args, format=args.format),
        digestfile=args.digestfile, report=None if args.quiet else report,
    )
    from builder.registry.lookaside import push_signatures

    stored = push_signatures(store, args.image, rest, digest)
    if stored is not None and not args.quiet:
        report(f"Storing signatures in {stored}")
    print(digest)
    return 0

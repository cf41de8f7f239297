"""``pybuild rmi [-f] [-a] IMAGE...``: remove names and images from the store."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("-f", "--force", action="store_true",
                        help="remove an image with several names, or one working containers "
                             "use (they keep their layers)")
    parser.add_argument("-a", "--all", action="store_true", help="remove every image")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image names or IDs")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.errors import PybuildError, UsageError

    if args.all == bool(args.images):
        raise UsageError("removing images: name at least one image, or use --all (not both)")
    store = open_store(options.root)
    refs = [record.manifest_digest for record in store.images()] if args.all else args.images
    failures: list[PybuildError] = []
    for ref in dict.fromkeys(refs):
        try:
            if not args.force:
                _refuse_if_used(store, ref)
            lines = store.remove(ref, force=args.force or args.all)
        except PybuildError as exc:
            failures.append(exc)
            continue
        for line in lines:
            print(line)
    if failures:
        raise failures[0]
    return 0


def _refuse_if_used(store: object, ref: str) -> None:
    """Buildah refuses to remove an image a working container was made from."""
    from builder.errors import StoreError
    from builder.store.containers import list_containers

    record = store.lookup(ref)  # type: ignore[attr-defined]
    users = [c.name for c in list_containers(store) if c.image_id == record.id]  # type: ignore[arg-type]
    if users:
        raise StoreError(
            f"removing image {ref!r}: image is in use by container(s): {', '.join(users)}",
            hint="remove the containers first (pybuild rm), or use rmi -f",
        )

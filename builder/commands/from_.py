"""``pybuild from [--name N] [--pull=POLICY] IMAGE|scratch``: make a working container."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.commands.runflags import add_network_flags, add_resource_flags
    from builder.registry.flags import add_registry_flags

    add_registry_flags(parser)
    add_network_flags(parser)  # saved with the container for its later runs
    add_resource_flags(parser)
    parser.add_argument("--name", help="container name (default: IMAGE-working-container)")
    parser.add_argument("--pull", nargs="?", const="always", default="missing",
                        choices=["missing", "always", "never"],
                        help="pull the image: missing (default), always or never")
    parser.add_argument("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
                        help="platform to pull")
    parser.add_argument("image", help="image name or ID, or scratch")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.commands.runflags import run_settings
    from builder.registry.flags import registry_options
    from builder.store.containers import create_container

    container = create_container(
        open_store(options.root), args.image, name=args.name, pull=args.pull,
        driver=options.storage_driver,
        registry_options=registry_options(args, platform=args.platform),
        run_settings=run_settings(args),
    )
    print(container.name, flush=True)
    return 0

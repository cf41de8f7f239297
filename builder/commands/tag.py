"""``pybuild tag IMAGE NAME...``: add names to an image."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("image", help="image name or ID")
    parser.add_argument("names", nargs="+", metavar="NAME", help="new names for the image")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store

    open_store(options.root).tag(args.image, *args.names)
    return 0

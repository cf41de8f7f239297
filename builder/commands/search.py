"""``pybuild search REGISTRY/TERM``: repositories whose name contains TERM, from the catalog API."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.registry.flags import add_registry_flags

    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("term", metavar="REGISTRY/TERM",
                        help="a registry and the text to look for (REGISTRY/ lists everything)")
    add_registry_flags(parser)


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.errors import UsageError
    from builder.registry.client import search_registry
    from builder.registry.flags import registry_options

    registry, slash, term = args.term.removeprefix("docker://").partition("/")
    if not slash or not registry:
        raise UsageError(f"searching {args.term}: want REGISTRY/TERM, e.g. 127.0.0.1:5000/app")
    names = search_registry(registry, term, registry_options(args))
    if args.json:
        print(json.dumps([{"Index": registry, "Name": n} for n in names], indent=4))
    else:
        print(f"{'INDEX':<24} NAME")
        for name in names:
            print(f"{registry:<24} {name}")
    return 0

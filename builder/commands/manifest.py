"""``pybuild manifest SUBCOMMAND``: create, add, annotate, inspect, remove, rm, push lists."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from builder.commands import key_values

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import Store


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.registry.flags import add_registry_flags, parse_bool

    subs = parser.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")
    create = subs.add_parser("create", help="make a list, optionally with images")
    create.add_argument("--amend", action="store_true", help="replace a list of that name")
    create.add_argument("list")
    create.add_argument("images", nargs="*")
    add = subs.add_parser("add", help="add an image to a list")
    annotate = subs.add_parser("annotate", help="set an entry's platform or annotations")
    for sub in (add, annotate):
        sub.add_argument("--os")
        sub.add_argument("--arch")
        sub.add_argument("--variant")
        sub.add_argument("--os-version")
        sub.add_argument("--os-features", action="append", default=[])
        sub.add_argument("--annotation", action="append", default=[], metavar="K=V")
        sub.add_argument("list")
    add.add_argument("image")
    annotate.add_argument("digest", metavar="IMAGE-DIGEST")
    inspect = subs.add_parser("inspect", help="print a list")
    inspect.add_argument("list")
    remove = subs.add_parser("remove", help="remove an entry from a list")
    remove.add_argument("list")
    remove.add_argument("digest", metavar="IMAGE-DIGEST")
    rm = subs.add_parser("rm", help="remove lists")
    rm.add_argument("lists", nargs="+")
    push = subs.add_parser("push", help="push a list and its images to a registry")
    add_registry_flags(push)
    push.add_argument("--all", nargs="?", const=True, default=True, type=parse_bool,
                      metavar="BOOL", help="push the images too (default true)")
    push.add_argument("--digestfile", help="write the list's digest to FILE")
    push.add_argument("list")
    push.add_argument("destination", metavar="docker://REF")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store

    return _ACTIONS[args.action](open_store(options.root), args)


def _create(store: Store, args: argparse.Namespace) -> int:
    from builder.store.manifests import create_manifest_list

    print(create_manifest_list(store, args.list, args.images, replace=args.amend).digest)
    return 0


def _platform(args: argparse.Namespace) -> str | None:
    if not (args.os or args.arch or args.variant):
        return None
    from builder.platform import host_platform

    host = host_platform()
    text = f"{args.os or host.os}/{args.arch or host.architecture}"
    return f"{text}/{args.variant}" if args.variant else text


def _add(store: Store, args: argparse.Namespace) -> int:
    from builder.store.manifests import add_to_manifest, annotate_manifest

    found = add_to_manifest(store, args.list, args.image, _platform(args),
                            annotations=key_values(args.annotation, "--annotation") or None)
    entry = found.index.manifests[-1]
    if args.os_version or args.os_features:
        found = annotate_manifest(store, found.name, entry.digest, os_version=args.os_version,
                                  os_features=args.os_features)
    print(f"{found.digest}: {entry.digest}")
    return 0


def _annotate(store: Store, args: argparse.Namespace) -> int:
    from builder.store.manifests import annotate_manifest

    found = annotate_manifest(
        store, args.list, args.digest, os=args.os, arch=args.arch, variant=args.variant,
        os_version=args.os_version, os_features=args.os_features,
        annotations=key_values(args.annotation, "--annotation"),
    )
    print(found.digest)
    return 0


def _inspect(store: Store, args: argparse.Namespace) -> int:
    import json

    from builder.store.manifests import find_manifest_list

    print(json.dumps(json.loads(find_manifest_list(store, args.list).to_json()), indent=4))
    return 0


def _remove(store: Store, args: argparse.Namespace) -> int:
    from builder.store.manifests import remove_from_manifest

    print(remove_from_manifest(store, args.list, args.digest).digest)
    return 0


def _rm(store: Store, args: argparse.Namespace) -> int:
    from builder.store.manifests import remove_manifest_list

    for name in args.lists:
        print(f"untagged: {name} {remove_manifest_list(store, name)}")
    return 0


def _push(store: Store, args: argparse.Namespace) -> int:
    from pathlib import Path

    from builder.registry.flags import registry_options
    from builder.store.manifests import push_manifest_list

    def report(line: str) -> None:
        print(line, file=sys.stderr)

    digest = push_manifest_list(store, args.list, args.destination, registry_options(args),
                                all=args.all, report=None if args.quiet else report)
    if args.digestfile:
        Path(args.digestfile).write_text(digest)
    print(digest)
    return 0


_ACTIONS = {
    "create": _create, "add": _add, "annotate": _annotate, "inspect": _inspect,
    "remove": _remove, "rm": _rm, "push": _push,
}

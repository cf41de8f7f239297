"""``pybuild run``: a throwaway container from a stored image, like ``podman run --rm``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.commands.runflags import add_network_flags, add_resource_flags

    parser.add_argument("--isolation", choices=["chroot", "oci"], default="chroot")
    add_network_flags(parser)
    add_resource_flags(parser)
    parser.add_argument("--user", "-u", default=None, help="USER value (default: the image's)")
    parser.add_argument("--workingdir", "-w", default=None)
    parser.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    parser.add_argument("--hostname", default="pybuild")
    parser.add_argument("--interactive", "-i", action="store_true", help="keep stdin open")
    parser.add_argument("image")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.commands.runflags import run_settings
    from builder.errors import UsageError
    from builder.executor.runspec import RunSpec
    from builder.executor.sandbox import run_in_sandbox
    from builder.rootfs.workspace import Workspace
    from builder.store.containers import is_container

    store = open_store(options.root)
    if is_container(store, args.image):
        from builder.commands.ctr import run_in_working_container

        return run_in_working_container(args, options)
    settings = run_settings(args)
    record = store.lookup(args.image)
    config = record.config.config
    argv = list(args.cmd) if args.cmd else list(config.cmd or [])
    argv = list(config.entrypoint or []) + argv
    if not argv:
        raise UsageError(f"running {args.image}: no command given and the image has none")
    env = list(config.env or [])
    env += [item if "=" in item else f"{item}=" for item in args.env]
    spec = RunSpec(
        argv=argv, env=env, cwd=args.workingdir or config.working_dir or "/",
        user=config.user if args.user is None else args.user, hostname=args.hostname,
        settings=settings,
        stdin=args.interactive, isolation=args.isolation,
    )
    with Workspace.create(store, record.layers, driver=options.storage_driver) as workspace:
        return run_in_sandbox(workspace.root, spec)

"""Commands on working containers: copy, add, config, commit, mount, umount, rm, rename.

Each works on a container ``pybuild from`` made, possibly in another process;
``add_arguments`` and ``run`` dispatch on the command name.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.commands import IDENTITY_LABEL, identity_labels
from builder.commands.argparsing import BoolFlag

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import Store


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add = parser.add_argument
    if name in ("copy", "add"):
        add("--chown", metavar="USER[:GROUP]", help="owner of the copied files")
        add("--chmod", metavar="MODE", help="mode of the copied files")
        add("--from", dest="from_", metavar="CONTAINER|IMAGE",
            help="copy from another container or an image instead of the host")
        add("--contextdir", type=Path, metavar="DIR",
            help="directory relative sources are taken from (default: current)")
        add("container")
        add("paths", nargs="+", metavar="SRC... DEST")
    elif name == "config":
        _config_arguments(parser)
    elif name == "commit":
        add("-f", "--format", choices=["oci", "docker"], default=None,
            help="image format (default: oci, env BUILDAH_FORMAT)")
        add("--squash", action="store_true", help="write the whole root as one layer")
        add("--rm", action="store_true", help="remove the container afterwards")
        add("--iidfile", help="write the image ID to this file")
        add("-q", "--quiet", action="store_true", help="print only the image ID")
        add("--compression", choices=["gzip", "zstd", "none"], default="gzip")
        add("--timestamp", type=int, default=None, metavar="SECONDS",
            help="created time and layer mtimes")
        add("--identity-label", action=BoolFlag, default=None,
            help=f"add the {IDENTITY_LABEL} label (default true, false with --timestamp)")
        add("container")
        add("image", nargs="?", help="name for the image")
    elif name == "mount":
        add("container")
    elif name in ("umount", "rm"):
        add("-a", "--all", action="store_true", help="all containers")
        add("containers", nargs="*")
    elif name == "rename":
        add("container")
        add("new_name")


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    many: dict[str, Any] = {"action": "append", "default": []}
    add("--env", "-e", metavar="K=V|K-", help="set (or remove with K-) a variable", **many)
    add("--label", "-l", metavar="K=V|K-", help="set (or remove) a label", **many)
    add("--annotation", "-a", metavar="K=V|K-", help="set (or remove) an annotation", **many)
    add("--port", "-p", metavar="PORT[/PROTO]", help="expose a port (PORT- removes)", **many)
    add("--volume", "-v", metavar="PATH", help="add a volume (PATH- removes)", **many)
    add("--cmd", help="default command: JSON array or words")
    add("--entrypoint", help="entrypoint: JSON array, or a shell command")
    add("--shell", help="shell for shell-form commands (JSON array)")
    add("--user", "-u", help="user[:group] to run as")
    add("--workingdir", help="working directory")
    add("--author", help="image author")
    add("--created-by", help="history text of the next commit")
    add("--stopsignal", help="signal that stops the container")
    add("--healthcheck", help="health check command ('CMD ...', 'CMD-SHELL ...' or NONE)")
    add("--healthcheck-interval")
    add("--healthcheck-timeout")
    add("--healthcheck-retries", type=int)
    add("--healthcheck-start-period")
    add("--arch", help="architecture recorded in the image")
    add("--os", help="OS recorded in the image")
    add("container")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store

    store = open_store(options.root)
    return int(_COMMANDS[args.command](store, args, options))


def _copy(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.errors import UsageError
    from builder.store.containers import copy_into_container

    if len(args.paths) < 2:
        raise UsageError(f"{args.command}: expected SRC... DEST")
    copy_into_container(
        store, args.container, args.paths[:-1], args.paths[-1],
        add=args.command == "add", chown=args.chown, chmod=args.chmod, from_=args.from_,
        contextdir=args.contextdir,
    )
    return 0


def _config(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.store.containers import ConfigChanges, update_config

    changes = ConfigChanges(
        env=tuple(args.env), cmd=args.cmd, entrypoint=args.entrypoint, labels=tuple(args.label),
        ports=tuple(args.port), volumes=tuple(args.volume), user=args.user,
        workingdir=args.workingdir, author=args.author, created_by=args.created_by,
        stop_signal=args.stopsignal, annotations=tuple(args.annotation),
        healthcheck=args.healthcheck, healthcheck_interval=args.healthcheck_interval,
        healthcheck_timeout=args.healthcheck_timeout,
        healthcheck_retries=args.healthcheck_retries,
        healthcheck_start_period=args.healthcheck_start_period, shell=args.shell,
        architecture=args.arch, os=args.os,
    )
    update_config(store, args.container, changes)
    return 0


def _commit(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.errors import UsageError
    from builder.store.containers import commit_container

    fmt = args.format or os.environ.get("BUILDAH_FORMAT") or "oci"
    identity = identity_labels(args.identity_label, args.timestamp)
    if identity:  # as Buildah's commit: set on the container, then committed
        from builder.store.containers import ConfigChanges, update_config

        update_config(store, args.container,
                      ConfigChanges(labels=tuple(f"{k}={v}" for k, v in identity.items())))
    record = commit_container(
        store, args.container, args.image, format=fmt, squash=args.squash,
        rm=args.rm, compression=args.compression, timestamp=args.timestamp,
    )
    if args.iidfile:
        try:
            Path(args.iidfile).write_text(record.id)
        except OSError as exc:
            raise UsageError(f"writing --iidfile {args.iidfile!r}: {exc.strerror}") from exc
    print(record.id.removeprefix("sha256:"), flush=True)
    return 0


def _mount(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder import userns
    from builder.errors import UsageError
    from builder.store.containers import find_container, mount_container

    if userns.transient() and find_container(store, args.container).driver == "overlay":
        raise UsageError(
            f"mounting container {args.container}: as an ordinary user the mount lives in this "
            "command's user namespace and would vanish when it exits",
            hint="run it in a 'pybuild unshare' session (as with 'buildah unshare')")
    print(mount_container(store, args.container))
    return 0


def _targets(store: Store, args: argparse.Namespace) -> list[str]:
    from builder.errors import UsageError
    from builder.store.containers import list_containers

    if args.all:
        return [c.id for c in list_containers(store)]
    if not args.containers:
        raise UsageError(f"{args.command}: name a container, or use --all")
    return list(args.containers)


def _umount(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.store.containers import unmount_container

    for ref in _targets(store, args):
        unmount_container(store, ref)
    return 0


def _rm(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.store.containers import remove_container

    for ref in _targets(store, args):
        print(remove_container(store, ref).id)
    return 0


def _rename(store: Store, args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.store.containers import rename_container

    rename_container(store, args.container, args.new_name)
    return 0


_COMMANDS = {
    "copy": _copy, "add": _copy, "config": _config, "commit": _commit, "mount": _mount,
    "umount": _umount, "rm": _rm, "rename": _rename,
}


def run_in_working_container(args: argparse.Namespace, options: GlobalOptions) -> int:
    """``pybuild run CONTAINER [--] CMD...`` when CONTAINER names a working container.

    Takes the namespace ``builder.commands.run`` parses (image, cmd, user,
    workingdir, env, volume, the RUN flags of ``runflags``, isolation, hostname,
    interactive); the RUN flags given override those ``from`` saved.
    """
    from builder.commands import open_store
    from builder.commands.runflags import run_settings
    from builder.store.containers import run_container

    argv = list(args.cmd)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return run_container(
        open_store(options.root), args.image, argv, user=args.user, workdir=args.workingdir,
        env=args.env, settings=run_settings(args),
        isolation=args.isolation, hostname=args.hostname if args.hostname != "pybuild" else None,
        stdin=args.interactive,
    )

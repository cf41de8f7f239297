"""``pybuild unshare [-m [VAR=]CONTAINER] [CMD...]``: a command in pybuild's user namespace.

As ``buildah unshare``: the command (default: ``$SHELL``, else ``/bin/sh``) runs
where an ordinary user is root, with their subordinate ids mapped
(``builder.userns``; the CLI has entered the namespace before this runs), so
it can read and remove what builds left in the store and use ``pybuild
mount``. ``PYBUILD_ROOT`` (the store) and ``PYBUILD_RUNROOT`` (the runtime
directory) are exported. ``--mount`` mounts working containers for the
command's lifetime and exports each root in ``VAR`` (default: the container's
name). As root the command simply runs, with the same variables.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--mount", "-m", action="append", default=[], metavar="[VAR=]CONTAINER",
                        help="mount a working container and export its root in VAR")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="command (default: $SHELL)")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    import contextlib
    import os
    import signal
    import subprocess

    from builder import userns
    from builder.errors import UsageError

    argv = list(args.cmd)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        argv = [os.environ.get("SHELL") or "/bin/sh"]
    env = dict(os.environ, PYBUILD_ROOT=str(options.root),
               PYBUILD_RUNROOT=str(userns.runtime_dir()))
    if userns.rootless():
        env.update(USER="root", LOGNAME="root", USERNAME="root")
    with contextlib.ExitStack() as stack:
        if args.mount:
            from builder.commands import open_store
            from builder.store.containers import container_root, find_container

            store = open_store(options.root)
            for item in args.mount:
                var, eq, ref = item.rpartition("=")
                container = find_container(store, ref)
                var = var if eq else container.name
                if not var.isidentifier():
                    raise UsageError(f"mounting {ref}: {var!r} is not a variable name")
                env[var] = str(stack.enter_context(container_root(store, container)))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command's to handle
        try:
            return subprocess.run(argv, env=env).returncode
        except OSError as exc:
            raise UsageError(f"running {argv[0]}: {exc.strerror}") from exc
        finally:
            signal.signal(signal.SIGINT, previous)

"""The ``pybuild`` command line: global options, then a subcommand.

Subcommand modules live in ``builder.commands``; each defines
``add_arguments(parser)`` and ``run(args, options) -> int``. Only the module
of the chosen subcommand is imported, so ``pybuild --version`` stays fast, and
a rebuild with unchanged inputs is answered by ``builder.replay`` before
anything else is loaded. This is the only module (with the command modules)
that prints.

For an ordinary user, every command that touches the store runs in a user and
mount namespace where the user is root (``builder.userns``), entered once the
command line is parsed; ``--version``, ``parse``, ``lint``, registry log-ins and
searches, and rebuilds ``builder.replay`` answers, stay outside.
"""

from __future__ import annotations

import os
import sys

from builder import replay

TYPE_CHECKING = False  # typing is not imported: it costs more than the replay check

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

__all__ = ["GlobalOptions", "main"]

VERSION = "0.1.0"

# name -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "bud": ("builder.commands.build", "build an image from a Containerfile"),
    "build": ("builder.commands.build", "build an image from a Containerfile (same as bud)"),
    "bake": ("builder.commands.bake", "build the services of a Compose file in parallel"),
    "parse": ("builder.commands.parse", "parse a Containerfile and print its instructions"),
    "lint": ("builder.commands.lint", "check a Containerfile against lint rules"),
    "images": ("builder.commands.images", "list images in the local store"),
    "inspect": ("builder.commands.inspect", "show an image's configuration and manifest"),
    "history": ("builder.commands.history", "show the steps that made an image, with sizes"),
    "tree": ("builder.commands.history", "show an image's layers with sizes and instructions"),
    "tag": ("builder.commands.tag", "add names to an image"),
    "rmi": ("builder.commands.rmi", "remove images"),
    "push": ("builder.commands.push", "push an image to a registry or an archive"),
    "pull": ("builder.commands.pull", "pull an image from a registry or an archive"),
    "search": ("builder.commands.search", "search a registry's catalog for repositories"),
    "login": ("builder.commands.login", "log in to a registry"),
    "logout": ("builder.commands.login", "log out of a registry"),
    "run": ("builder.commands.run", "run a command in an image or a working container"),
    "info": ("builder.commands.info", "show store, storage driver and isolation"),
    "from": ("builder.commands.from_", "make a working container from an image"),
    "containers": ("builder.commands.containers", "list working containers"),
    "copy": ("builder.commands.ctr", "copy files into a working container"),
    "add": ("builder.commands.ctr", "add files, URLs or archives to a working container"),
    "config": ("builder.commands.ctr", "change a working container's image config"),
    "commit": ("builder.commands.ctr", "write an image from a working container"),
    "mount": ("builder.commands.ctr", "mount a working container's root and print it"),
    "umount": ("builder.commands.ctr", "unmount a working container's root"),
    "rm": ("builder.commands.ctr", "remove working containers"),
    "rename": ("builder.commands.ctr", "rename a working container"),
    "manifest": ("builder.commands.manifest", "create, edit and push manifest lists"),
    "version": ("builder.commands.info", "show version information"),
    "check": ("builder.commands.check", "verify (and --repair) the image store"),
    "prune": ("builder.commands.prune", "remove unused blobs, dangling images and caches"),
    "unshare": ("builder.commands.unshare", "run a command in pybuild's user namespace"),
}
# commands that never touch the store run outside the rootless user namespace
_OUTSIDE_NAMESPACE = frozenset({"parse", "lint", "version", "login", "logout", "search"})


class GlobalOptions:
    """Options given before the subcommand."""

    __slots__ = ("root", "storage_driver", "debug")

    def __init__(self, root: Path, storage_driver: str | None, debug: bool) -> None:
        self.root = root
        self.storage_driver = storage_driver
        self.debug = debug


def default_root() -> Path:
    from pathlib import Path

    return Path(replay.default_root())


def _top_parser() -> argparse.ArgumentParser:
    import argparse
    from pathlib import Path

    from builder.commands.argparsing import Parser

    parser = Parser(
        prog="pybuild",
        description="Build OCI container images from Containerfiles, without a daemon.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"pybuild version {VERSION}")
    parser.add_argument(
        "--root", type=Path, default=None, help="store root (env PYBUILD_ROOT)"
    )
    parser.add_argument(
        "--storage-driver", choices=["overlay", "vfs"], default=None,
        help="how root filesystems are assembled (default: overlay where it mounts)",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for errors and how RUN steps are set up")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    replayed = replay.attempt(argv)
    if replayed is not None:
        return replayed
    import importlib
    import signal

    from builder.commands.argparsing import Parser

    top = _top_parser()
    ns = top.parse_args(argv)
    options = GlobalOptions(
        root=ns.root or default_root(), storage_driver=ns.storage_driver, debug=ns.debug
    )
    if ns.debug:
        os.environ["PYBUILD_DEBUG"] = "1"  # read where debug lines are written
    module_name, summary = COMMANDS[ns.command]
    module = importlib.import_module(module_name)
    sub = Parser(prog=f"pybuild {ns.command}", description=summary)
    module.add_arguments(sub, ns.command)
    args = sub.parse_args(ns.args)
    args.command = ns.command
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if ns.command not in _OUTSIDE_NAMESPACE:
            from builder import userns

            userns.enter()
        return int(module.run(args, options) or 0)
    except KeyboardInterrupt:
        print("pybuild: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("pybuild: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - rendered for the user below
        return report(exc, debug=options.debug)


class _Terminated(Exception):
    """SIGTERM turned into an exception so ``finally`` blocks clean up."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated()


def report(exc: BaseException, *, debug: bool = False) -> int:
    """Print an error for people and return the exit status it maps to."""
    from builder.errors import ContainerfileError, PybuildError
    from builder.source import render_excerpt

    if debug or not isinstance(exc, PybuildError):
        import traceback

        traceback.print_exception(exc)
        if not isinstance(exc, PybuildError):
            return 125
    assert isinstance(exc, PybuildError)
    print(f"Error: {exc}", file=sys.stderr)
    if isinstance(exc, ContainerfileError) and exc.location is not None:
        try:
            with open(exc.location.file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        excerpt = render_excerpt(text, exc.location)
        if excerpt:
            print(excerpt, file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""``pybuild bud`` / ``pybuild build``: build an image from a Containerfile.

``--pull`` follows Buildah 1.28: a bare ``--pull`` (or ``true``) pulls when the
registry has a newer image, ``false`` only when missing (the default),
``always`` and ``never`` as named. ``--push`` sends each ``-t`` tag (and the
``--manifest`` list) to the registry its name points at. ``--platform a,b``
builds once per platform into the ``--manifest`` list.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import replay
from builder.commands import key_values

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

COMPRESSIONS = ("gzip", "zstd", "none")
PULL_POLICIES = {  # --pull values (Buildah's and Podman's spellings) -> policy
    "true": "newer", "newer": "newer", "ifnewer": "newer",
    "false": "missing", "missing": "missing", "ifmissing": "missing", "notpresent": "missing",
    "always": "always", "never": "never",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.commands.runflags import add_network_flags
    from builder.registry.flags import add_registry_flags

    add = parser.add_argument
    add("context", nargs="?", default=".", help="build context directory (default: .)")
    add("-f", "--file", help="Containerfile to use; - reads it from stdin")
    add("-t", "--tag", action="append", default=[], help="name the image (repeatable)")
    add("--build-arg", action="append", default=[], metavar="KEY[=VALUE]",
        help="set a build argument; KEY alone takes it from the environment")
    add("--build-arg-file", action="append", default=[], metavar="FILE",
        help="read KEY=VALUE build arguments from a file")
    add("--target", help="build up to this stage")
    add("--format", choices=("oci", "docker"), default=None,
        help="manifest and config format (default: oci, env BUILDAH_FORMAT)")
    add("--iidfile", help="write the image ID to this file")
    add("-q", "--quiet", action="store_true", help="print only the image ID")
    add("--label", action="append", default=[], metavar="KEY=VALUE", help="add a label")
    add("--annotation", action="append", default=[], metavar="KEY=VALUE",
        help="add a manifest annotation")
    add("--timestamp", type=int, default=None, metavar="SECONDS",
        help="created time and layer mtimes (env SOURCE_DATE_EPOCH)")
    add("--compression", choices=COMPRESSIONS, default="gzip", help="layer compression")
    add("--platform", default=None, metavar="OS/ARCH[/VARIANT][,...]",
        help="platform to build for; several (comma-separated) need --manifest")
    add("--all-platforms", action="store_true",
        help="build for every platform of the base image (not supported)")
    add("--manifest", default=None, metavar="NAME",
        help="add the image(s) to this manifest list, made when missing")
    add("--pull", nargs="?", const="true", default=None, metavar="POLICY",
        help="pull base images: true/newer (when the registry's differs), false/missing "
             "(default), always, never")
    add("--pull-always", dest="pull", action="store_const", const="always",
        help="same as --pull=always")
    add("--pull-never", dest="pull", action="store_const", const="never",
        help="same as --pull=never")
    add("--push", action="store_true",
        help="after the build, push each -t tag (and the --manifest list) to its registry")
    add("--digestfile", default=None, metavar="FILE",
        help="with --push, write the pushed manifest's digest to this file")
    add_registry_flags(parser, quiet=False)
    add("--isolation", choices=("chroot", "oci"), default=None,
        help="how RUN is isolated (env BUILDAH_ISOLATION)")
    add_network_flags(parser)
    add("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
        help="a secret RUN --mount=type=secret can use")
    add("--ignorefile", default=None, help="ignore file to use instead of the context's")
    add("--layers", nargs="?", const="true", default="true", metavar="true|false",
        help="cache each step's result and reuse it (default: true, unlike Buildah)")
    add("--no-layers", dest="layers", action="store_const", const="false",
        help="same as --layers=false")
    add("--no-cache", action="store_true",
        help="run every step, ignoring the cache (results are still recorded)")
    add("--jobs", type=int, default=0, metavar="N",
        help="build up to N independent stages at once (default: one per CPU)")
    add("--cache-from", action="append", default=[], metavar="REGISTRY/REPO",
        help="look steps up in this registry cache (repeatable)")
    add("--cache-to", default=None, metavar="REGISTRY/REPO",
        help="send each step's result to this registry cache")
    add("--cache-ttl", default=None, metavar="DURATION",
        help="ignore cache entries older than this (e.g. 24h, 30m, 1h30m)")
    add("--cache-mounts", action="store_true",
        help="with --cache-to/--cache-from, ship RUN --mount=type=cache contents too")
    add("--squash", action="store_true",
        help="merge the target stage's new layers into one")
    add("--squash-all", action="store_true", help="merge every layer into one")


def _secrets(values: list[str]) -> dict[str, bytes]:
    """``id=X,src=FILE`` or ``id=X,env=VAR`` -> {X: contents}."""
    from builder.errors import UsageError

    out: dict[str, bytes] = {}
    for raw in values:
        fields = dict(part.partition("=")[::2] for part in raw.split(","))
        ident = fields.get("id")
        if not ident:
            raise UsageError(f"parsing --secret {raw!r}: no id=")
        if "src" in fields:
            try:
                with open(fields["src"], "rb") as f:
                    out[ident] = f.read()
            except OSError as exc:
                raise UsageError(f"reading secret {ident!r}: {exc.strerror}") from exc
        elif "env" in fields:
            if fields["env"] not in os.environ:
                raise UsageError(f"reading secret {ident!r}: ${fields['env']} is not set")
            out[ident] = os.environ[fields["env"]].encode()
        else:
            raise UsageError(f"parsing --secret {raw!r}: expected src= or env=")
    return out


def parse_duration(text: str) -> float:
    """``24h``, ``30m``, ``1h30m``, ``90s``, ``2d`` or plain seconds -> seconds."""
    import re

    from builder.errors import UsageError

    units = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"parsing --cache-ttl {text!r}: expected a duration such as 24h or 90m")
    return sum(float(n) * units[u] for n, u in parts)


def _layers(args: argparse.Namespace) -> bool:
    """--layers takes an optional true/false; a bare ``--layers DIR`` names the context."""
    from builder.errors import UsageError

    lowered = args.layers.lower()
    if lowered in ("true", "false", "1", "0"):
        return lowered in ("true", "1")
    if args.context != ".":
        raise UsageError(f"parsing --layers {args.layers!r}: expected true or false")
    args.context = args.layers
    return True


def _timestamp(value: int | None) -> int | None:
    from builder.errors import UsageError

    if value is not None:
        return value
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None or epoch == "":
        return None
    if not epoch.isdigit():
        raise UsageError(f"parsing SOURCE_DATE_EPOCH {epoch!r}: not a number of seconds")
    return int(epoch)


def _pull_policy(args: argparse.Namespace) -> str:
    """--pull takes an optional policy; a bare ``--pull DIR`` names the context."""
    from builder.errors import UsageError

    if args.pull is None:
        return "missing"
    policy = PULL_POLICIES.get(args.pull.lower())
    if policy is not None:
        return policy
    if args.context != ".":
        raise UsageError(f"parsing --pull {args.pull!r}: expected true, false, always, never, "
                         "missing or newer")
    args.context = args.pull
    return "newer"


def _platforms(text: str | None) -> list[Any]:
    from builder.errors import UsageError
    from builder.plan.args import parse_platform

    if text is None or "," not in text:
        return [parse_platform(text)]
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise UsageError(f"parsing --platform {text!r}: empty platform in the list")
    return [parse_platform(part) for part in parts]


def _push(store: Any, args: argparse.Namespace, tags: tuple[str, ...], image_id: str,
          progress: Any) -> None:
    """Push the tags (the image) and the --manifest list to their registries."""
    from builder.errors import UsageError
    from builder.manifests import push_manifest_list
    from builder.registry.client import push_image
    from builder.registry.flags import registry_options
    from builder.store import normalize_name

    if not tags and not args.manifest:
        raise UsageError("checking --push: nothing to push: name the image with -t "
                         "(or a list with --manifest)")
    options = registry_options(args, format=None)
    report = None if args.quiet else progress.info
    digests: list[str] = []
    for tag in tags:
        dest = normalize_name(tag)
        digest = push_image(store, image_id, dest, options, report=report)
        progress.info(f"Pushed {dest}@{digest}")
        digests.append(digest)
    if args.manifest:
        dest = normalize_name(args.manifest)
        digest = push_manifest_list(store, args.manifest, dest, options, report=report)
        progress.info(f"Pushed {dest}@{digest}")
        digests.append(digest)
    if args.digestfile:
        try:
            Path(args.digestfile).write_text(digests[-1])
        except OSError as exc:
            raise UsageError(f"writing --digestfile {args.digestfile!r}: {exc.strerror}") \
                from exc


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands.runflags import run_settings
    from builder.context import open_context, read_containerfile
    from builder.errors import UsageError
    from builder.executor.build import BuildOptions, build_platforms
    from builder.executor.output import Progress
    from builder.plan.args import parse_build_args
    from builder.registry.flags import registry_options
    from builder.store import Store

    fmt = args.format or os.environ.get("BUILDAH_FORMAT") or "oci"
    if fmt not in ("oci", "docker"):
        raise UsageError(f"checking --format: unknown format {fmt!r} (expected oci or docker)")
    if fmt == "docker" and args.compression == "zstd":
        raise UsageError("checking --compression: zstd layers need --format oci")
    isolation = args.isolation or os.environ.get("BUILDAH_ISOLATION") or None
    if isolation not in (None, "chroot", "oci"):
        raise UsageError(f"checking --isolation: unknown isolation {isolation!r}")
    layers = _layers(args)
    if args.all_platforms:
        raise UsageError("checking --all-platforms: not supported; list the platforms with "
                         "--platform")
    if args.digestfile and not args.push:
        raise UsageError("checking --digestfile: only meaningful with --push")
    platforms = _platforms(args.platform)
    pull = _pull_policy(args)
    _check_replayable(args, pull, layers, len(platforms))
    build_args = parse_build_args(args.build_arg, args.build_arg_file)
    context = open_context(args.context)
    source = read_containerfile(context, args.file, sys.stdin.buffer)
    build_options = BuildOptions(
        context=context,
        containerfile=source,
        platform=platforms[0],
        tags=tuple(args.tag),
        build_args=build_args,
        target=args.target,
        format=fmt,
        labels=key_values(args.label, "--label"),
        annotations=key_values(args.annotation, "--annotation"),
        timestamp=_timestamp(args.timestamp),
        compression=args.compression,
        isolation=isolation,
        run_settings=run_settings(args),
        secrets=_secrets(args.secret),
        driver=options.storage_driver,
        ignore_file=Path(args.ignorefile).absolute() if args.ignorefile else None,
        layers=layers,
        no_cache=args.no_cache,
        jobs=args.jobs,
        cache_from=tuple(args.cache_from),
        cache_to=args.cache_to,
        cache_ttl=parse_duration(args.cache_ttl) if args.cache_ttl else None,
        cache_mounts=args.cache_mounts,
        squash="all" if args.squash_all else "new" if args.squash else None,
        pull=pull,
        registry=functools.partial(registry_options, args),
    )
    store = Store(options.root)
    progress = Progress(quiet=args.quiet)
    results = build_platforms(store, build_options, platforms, progress, args.manifest)
    if args.push:
        _push(store, args, build_options.tags, results[-1].image_id, progress)
    if len(results) > 1:
        from builder.manifests import find_manifest_list

        image_id = find_manifest_list(store, args.manifest).digest  # the list, as Buildah
    else:
        image_id = results[0].image_id
    if args.iidfile:
        try:
            Path(args.iidfile).write_text(image_id)
        except OSError as exc:
            raise UsageError(f"writing --iidfile {args.iidfile!r}: {exc.strerror}") from exc
    print(image_id.removeprefix("sha256:"), flush=True)
    if replay.recording():
        replay.line(1, image_id.removeprefix("sha256:"))
        _save_replay(store, image_id, build_options.tags, args.iidfile)
    return 0


def _check_replayable(args: argparse.Namespace, pull: str, layers: bool, platforms: int) -> None:
    """Builds whose outcome depends on more than their recorded inputs leave no record."""
    reasons = {
        "push": args.push, "registry cache": args.cache_from or args.cache_to,
        "pull policy": pull in ("always", "newer"), "no cache": args.no_cache or not layers,
        "platforms": platforms > 1 or args.manifest, "squash": args.squash or args.squash_all,
        "secrets": args.secret, "stdin": args.file == "-",
    }
    for why, applies in reasons.items():
        if applies:
            replay.cancel(why)


def _save_replay(store: Any, image_id: str, tags: tuple[str, ...], iidfile: str | None) -> None:
    """Record the build for ``builder.replay`` once the store, under its lock, still
    names the images the build used and made as it did."""
    from builder.errors import PybuildError
    from builder.store import normalize_name

    with store.lock():
        try:
            if any(store.lookup(name).manifest_digest != digest
                   for name, digest in replay.images_used().items()):
                return
            if any(store.lookup(normalize_name(tag)).id != image_id for tag in tags):
                return
        except PybuildError:
            return
        state = [store.root / "index.json", store.root / "cache" / "steps",
                 store.layout.blobs]
        replay.save([os.fspath(p) for p in state], [(iidfile, image_id)] if iidfile else [])

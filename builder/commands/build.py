"""``pybuild bud`` / ``pybuild build``: build an image from a Containerfile.

``--pull`` follows Buildah 1.28: a bare ``--pull`` (or ``true``) pulls when the
registry has a newer image, ``false`` only when missing (the default),
``always`` and ``never`` as named. ``--push`` sends each ``-t`` tag (and the
``--manifest`` list) to the registry its name points at. ``--platform a,b``
builds once per platform into the ``--manifest`` list.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import replay
from builder.commands import IDENTITY_LABEL, identity_labels, key_values
from builder.commands.argparsing import BoolFlag

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

COMPRESSIONS = ("gzip", "zstd", "none")
PULL_POLICIES = {  # --pull values (Buildah's and Podman's spellings) -> policy
    "true": "newer", "newer": "newer", "ifnewer": "newer",
    "false": "missing", "missing": "missing", "ifmissing": "missing", "notpresent": "missing",
    "always": "always", "never": "never",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.commands.runflags import add_network_flags, add_resource_flags
    from builder.registry.flags import add_registry_flags

    add = parser.add_argument
    add("context", nargs="?", default=".",
        help="build context: a directory (default: .), a git URL (REPO.git#REF:DIR, "
             "git@HOST:REPO, git://...), an http(s) URL of a tar archive or Containerfile, "
             "a tar archive file, or - for a tar archive on stdin")
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
    add("--compression", choices=COMPRESSIONS, default=None,
        help="layer compression (default gzip)")
    add("--platform", default=None, metavar="OS/ARCH[/VARIANT][,...]",
        help="platform to build for; several (comma-separated) need --manifest")
    add("--all-platforms", action=BoolFlag,
        help="build for every platform all the base images list, into --manifest")
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
    add_resource_flags(parser)
    add("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
        help="a secret RUN --mount=type=secret can use")
    add("--ssh", action="append", default=[], metavar="default|ID[=SOCKET|KEY[,KEY]]",
        help="an SSH agent (or keys) RUN --mount=type=ssh can use")
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
    # issue 18: the rest of Buildah's bud flags, one group each
    _add_image_flags(parser)
    _add_platform_flags(parser)
    _add_source_flags(parser)
    _add_output_flags(parser)
    _add_compat_flags(parser)


def _add_image_flags(parser: argparse.ArgumentParser) -> None:
    """What the committed image's config gets (``builder.executor.imageflags``)."""
    add = parser.add_argument
    add("--env", action="append", default=[], metavar="KEY[=VALUE]",
        help="set an environment variable in the image; $VAR expands from the image's "
             "environment; KEY alone takes pybuild's value (not seen by RUN)")
    add("--unsetenv", action="append", default=[], metavar="KEY",
        help="remove an environment variable from the image")
    add("--unsetlabel", action="append", default=[], metavar="KEY",
        help="remove a label, such as one the base image set")
    add("--identity-label", action=BoolFlag, default=None,
        help=f"add the {IDENTITY_LABEL} label (default true, false with --timestamp or "
             "SOURCE_DATE_EPOCH)")
    add("--omit-history", action=BoolFlag, help="write the image without any history")
    add("--os-version", default=None, metavar="VERSION", help="set the image's os.version")
    add("--os-feature", action="append", default=[], metavar="FEATURE",
        help="add to the image's os.features; FEATURE- removes it")
    add("--sign-by", default=None, metavar="FINGERPRINT",
        help="sign the image with this GPG key (needs -t)")


def _add_platform_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--os", default=None, help="the image's OS (like --platform OS/host-arch)")
    add("--arch", default=None, help="the image's architecture (like --platform host-os/ARCH)")
    add("--variant", default=None, help="the image's architecture variant")


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    """Where the build reads from besides the context."""
    add = parser.add_argument
    add("--from", dest="from_image", default=None, metavar="IMAGE",
        help="use IMAGE as the base of the first FROM")
    add("--build-context", action="append", default=[], metavar="NAME=VALUE",
        help="a named context for FROM NAME and COPY --from=NAME: a directory, "
             "docker-image://REF, oci-layout://DIR[:TAG], a git URL or an https URL")
    add("--skip-unused-stages", action=BoolFlag, default=True,
        help="build only the stages the target needs (default true)")
    add("--stdin", action=BoolFlag, help="RUN steps read pybuild's stdin")
    add("--cpp-flag", action="append", default=[], metavar="FLAG",
        help="a flag for cpp, which preprocesses Containerfiles named *.in")
    add("--decryption-key", action="append", default=[], metavar="KEY[:PASSPHRASE]",
        help="accepted; encrypted layers are refused (ocicrypt is not implemented)")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-o", "--output", default=None, metavar="type=local|tar,dest=PATH",
        help="also export the target's root file system: DIR, type=local,dest=DIR, "
             "type=tar,dest=FILE, or - (a tar on stdout); the image is stored as well")
    add("--logfile", default=None, metavar="FILE", help="write the build's output to FILE")
    add("--logsplit", action=BoolFlag,
        help="with --logfile, one file per platform: FILE_OS_ARCH")


def _add_compat_flags(parser: argparse.ArgumentParser) -> None:
    """Accepted so that Buildah and Docker command lines run unchanged."""
    add = parser.add_argument
    add("--rm", action=BoolFlag, default=True,
        help="no effect: pybuild never leaves intermediate containers (compatibility)")
    add("--force-rm", action=BoolFlag,
        help="no effect: pybuild never leaves intermediate containers (compatibility)")
    add("--compress", action=BoolFlag,
        help="no effect, as in Buildah: layers are compressed as --compression says")
    add("--disable-content-trust", action=BoolFlag,
        help="no effect, as in Buildah (a Docker option)")
    add("-D", "--disable-compression", action=BoolFlag, default=None,
        help="same as --compression none (=false keeps --compression)")


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


def _platforms(args: argparse.Namespace) -> list[Any]:
    """--platform (a comma-separated list), or --os/--arch/--variant with the host's
    values for what is not given (Buildah refuses both kinds together)."""
    from builder.errors import UsageError
    from builder.platform import Platform, host_platform, parse_platform

    text = args.platform
    parts_given = [flag for flag in ("os", "arch", "variant") if getattr(args, flag)]
    if text is not None and parts_given:
        raise UsageError(f"checking --platform: cannot be used with --{parts_given[0]}")
    if parts_given:
        host = host_platform()
        arch = (args.arch or host.architecture).lower()
        variant = args.variant if args.variant is not None else \
            host.variant if arch == host.architecture else ""
        return [Platform((args.os or host.os).lower(), arch, variant.lower())]
    if text is None or "," not in text:
        return [parse_platform(text)]
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise UsageError(f"parsing --platform {text!r}: empty platform in the list")
    return [parse_platform(part) for part in parts]


def _compression(args: argparse.Namespace) -> str:
    """--compression, or none with --disable-compression (Buildah's -D)."""
    from builder.errors import UsageError

    if args.disable_compression:
        if args.compression not in (None, "none"):
            raise UsageError(f"checking --disable-compression: conflicts with --compression "
                             f"{args.compression}")
        return "none"
    return str(args.compression or "gzip")


def _split_list(values: list[str]) -> tuple[str, ...]:
    """A repeatable flag whose values may also be comma-separated (Go's StringSlice)."""
    return tuple(part for value in values for part in value.split(",") if part)


def _push(store: Any, args: argparse.Namespace, tags: tuple[str, ...], image_id: str,
          progress: Any) -> None:
    """Push the tags (the image) and the --manifest list to their registries."""
    from builder.errors import UsageError
    from builder.registry.flags import registry_options
    from builder.registry.lookaside import push_signatures
    from builder.store import normalize_name
    from builder.store.manifests import push_manifest_list
    from builder.store.transports import push_image

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
        stored = push_signatures(store, image_id, dest, digest)
        if stored is not None:
            progress.info(f"Stored signatures in {stored}")
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
    from builder.commands import open_store
    from builder.commands.buildio import (
        named_contexts,
        open_sources,
        output_to,
        platform_log,
        stdout_aside,
    )
    from builder.commands.runflags import run_settings
    from builder.errors import UsageError
    from builder.executor.build import BuildOptions, build_platforms
    from builder.executor.output import Progress
    from builder.executor.sshagent import parse_ssh
    from builder.plan.args import parse_build_args
    from builder.registry.flags import registry_options
    from builder.rootfs.export import parse_output

    fmt = args.format or os.environ.get("BUILDAH_FORMAT") or "oci"
    if fmt not in ("oci", "docker"):
        raise UsageError(f"checking --format: unknown format {fmt!r} (expected oci or docker)")
    compression = _compression(args)
    if fmt == "docker" and compression == "zstd":
        raise UsageError("checking --compression: zstd layers need --format oci")
    isolation = args.isolation or os.environ.get("BUILDAH_ISOLATION") or None
    if isolation not in (None, "chroot", "oci"):
        raise UsageError(f"checking --isolation: unknown isolation {isolation!r}")
    layers = _layers(args)
    if args.digestfile and not args.push:
        raise UsageError("checking --digestfile: only meaningful with --push")
    if args.logsplit and not args.logfile:
        raise UsageError("checking --logsplit: cannot be used without --logfile")
    platforms = _platforms(args)
    if args.all_platforms and (args.platform or args.os or args.arch or args.variant):
        raise UsageError("checking --all-platforms: cannot be used with --platform, --os, "
                         "--arch or --variant")
    output = parse_output(args.output) if args.output else None
    _check_signing(args, len(platforms))
    pull = _pull_policy(args)
    _check_replayable(args, pull, layers, len(platforms))
    build_args = parse_build_args(args.build_arg, args.build_arg_file)
    timestamp = _timestamp(args.timestamp)
    store = open_store(options.root)
    with contextlib.ExitStack() as stack:
        if output is not None and output.to_stdout:  # the tar owns stdout
            output = dataclasses.replace(output, stream=stack.enter_context(stdout_aside()))
        if args.logfile:
            stack.enter_context(output_to(args.logfile))
        progress = Progress(quiet=args.quiet or (output is not None and output.to_stdout))
        context, source = open_sources(args, store, progress)
        build_options = BuildOptions(
            context=context,
            containerfile=source,
            platform=platforms[0],
            tags=tuple(args.tag),
            build_args=build_args,
            target=args.target,
            format=fmt,
            labels={**identity_labels(args.identity_label, timestamp),
                    **key_values(args.label, "--label")},
            annotations=key_values(args.annotation, "--annotation"),
            timestamp=timestamp,
            compression=compression,
            isolation=isolation,
            run_settings=run_settings(args),
            secrets=_secrets(args.secret),
            ssh=parse_ssh(args.ssh, os.environ),
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
            env=tuple(args.env),
            unset_env=_split_list(args.unsetenv),
            unset_labels=_split_list(args.unsetlabel),
            omit_history=args.omit_history,
            os_version=args.os_version,
            os_features=tuple(args.os_feature),
            from_image=args.from_image,
            skip_unused_stages=args.skip_unused_stages,
            build_contexts=named_contexts(args.build_context, store),
            stdin=args.stdin,
            output=output,
        )
        if args.all_platforms:
            from builder.executor.baseplatforms import base_platforms

            platforms = base_platforms(store, build_options)
            replay.cancel("platforms")
        if output is not None and len(platforms) > 1:
            if output.type != "local":
                raise UsageError("checking --output: a tar holds one platform's files; use "
                                 "type=local (one directory per platform) or one platform")
            build_options = dataclasses.replace(
                build_options, output=dataclasses.replace(output, per_platform=True))
        log_for = functools.partial(platform_log, args.logfile) if args.logsplit else None
        results = build_platforms(store, build_options, platforms, progress, args.manifest,
                                  log_for=log_for)
        if args.sign_by:
            _sign(store, args.sign_by, build_options.tags, results, progress)
        if args.push:
            _push(store, args, build_options.tags, results[-1].image_id, progress)
        if len(results) > 1:
            from builder.store.manifests import find_manifest_list

            image_id = find_manifest_list(store, args.manifest).digest  # the list, as Buildah
        else:
            image_id = results[0].image_id
        if args.iidfile:
            try:
                Path(args.iidfile).write_text(image_id)
            except OSError as exc:
                raise UsageError(f"writing --iidfile {args.iidfile!r}: {exc.strerror}") \
                    from exc
        if output is None or not output.to_stdout:
            print(image_id.removeprefix("sha256:"), flush=True)
    if replay.recording():
        replay.line(1, image_id.removeprefix("sha256:"))
        _save_replay(store, image_id, build_options.tags, args.iidfile)
    return 0


def _check_signing(args: argparse.Namespace, platforms: int) -> None:
    """--sign-by needs a name to sign for and one image; the key is tried before the
    build starts, so a bad key costs no build."""
    from builder.errors import UsageError
    from builder.image.signature import gpg_sign

    if not args.sign_by:
        return
    if platforms > 1 or args.all_platforms:
        raise UsageError("checking --sign-by: sign the images of several platforms by "
                         "building them one at a time")
    if not args.tag:
        raise UsageError("checking --sign-by: name the image with -t (a signature says "
                         "which name the image may be pulled as)")
    replay.cancel("signing")
    gpg_sign(b"{}", args.sign_by)


def _sign(store: Any, fingerprint: str, tags: tuple[str, ...], results: list[Any],
          progress: Any) -> None:
    """Sign the image for each of its names, as Buildah's commit does for its one name."""
    from builder.image.signature import gpg_sign, save_signature, signature_payload
    from builder.store import normalize_name

    for result in results:
        for tag in tags:
            name = normalize_name(tag)
            payload = signature_payload(name, result.manifest_digest)
            save_signature(store.root, result.manifest_digest, name, fingerprint,
                           gpg_sign(payload, fingerprint))
            progress.info(f"Signed {name}@{result.manifest_digest} with {fingerprint}")


def _check_replayable(args: argparse.Namespace, pull: str, layers: bool, platforms: int) -> None:
    """Builds whose outcome depends on more than their recorded inputs leave no record."""
    reasons = {
        "push": args.push, "registry cache": args.cache_from or args.cache_to,
        "pull policy": pull in ("always", "newer"), "no cache": args.no_cache or not layers,
        "platforms": platforms > 1 or args.manifest, "squash": args.squash or args.squash_all,
        "secrets": args.secret, "ssh": args.ssh, "stdin": args.file == "-",
        # a replay would print and not export, sign, log or fetch
        "output": args.output, "signing": args.sign_by, "logfile": args.logfile,
        "all platforms": args.all_platforms, "build contexts": args.build_context,
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

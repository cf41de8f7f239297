"""``pybuild inspect [--format TEMPLATE] IMAGE``: an image's configuration and manifest.

``--format`` takes a Go template as Buildah does (``builder.commands.template``:
``{{.Config.Cmd}}``, ``{{json .Config}}``, ``{{index .Config.Labels "k"}}``), a plain
dotted path such as ``.OCIv1.architecture``, or ``json`` (the whole description, as
``podman image inspect --format json`` prints it).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from builder.commands.template import render

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import ImageRecord


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--type", "-t", choices=["image", "container"], default="image",
                        help="what to inspect: an image (default) or a working container")
    parser.add_argument("--format", "-f", default=None,
                        help="a Go template, a dotted path, or json")
    parser.add_argument("--raw", action="store_true",
                        help="with docker://REF: print the manifest as the registry sends it")
    parser.add_argument("image", help="image name, ID, or oci:/oci-archive:/docker-archive:/docker:// ref")
    from builder.registry.flags import add_registry_flags

    add_registry_flags(parser)


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.store.transports import parse_transport, read_image

    if parse_transport(args.image)[0] == "docker":
        return _inspect_remote(args)
    if args.type == "container":
        from builder.store.containers import inspect_container

        data = inspect_container(open_store(options.root), args.image)
    else:
        data = inspect_data(read_image(open_store(options.root), args.image))
    if args.format is None or args.format.strip() == "json":
        print(json.dumps(data, indent=4))
    else:
        print(render(args.format, data))
    return 0


def _inspect_remote(args: argparse.Namespace) -> int:
    """Like ``skopeo inspect``: read a registry image without pulling it."""
    import sys

    from builder.registry.client import inspect_remote
    from builder.registry.flags import registry_options

    result = inspect_remote(args.image, registry_options(args), raw=args.raw)
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    elif args.format is None or args.format.strip() == "json":
        print(json.dumps(result, indent=4))
    else:
        print(render(args.format, result))
    return 0


def inspect_data(record: ImageRecord) -> dict[str, Any]:
    """A Buildah-like description of an image: names, container config, the whole
    image config (OCIv1), manifest and history."""
    config = json.loads(record.config.to_json("docker"))
    return {
        "Type": "image",
        "FromImage": record.names[0] if record.names else "",
        "FromImageID": record.id[7:],
        "FromImageDigest": record.manifest_digest,
        "Names": list(record.names),
        "Created": record.created,
        "Size": record.size,
        "Architecture": record.config.architecture,
        "OS": record.config.os,
        "Config": config["config"],
        "OCIv1": config,
        "Manifest": json.loads(record.manifest.to_json()),
        "ManifestType": record.manifest.media_type,
        "History": config.get("history", []),
    }

"""``pybuild inspect [--format TEMPLATE] IMAGE``: an image's configuration and manifest.

``--format`` takes a subset of Go templates as Buildah does: ``{{.Config.Cmd}}``,
``{{json .Config}}``, ``{{.Config | json}}``, ``{{index .Config.Labels "k"}}``,
text around actions; or a plain dotted path such as ``.OCIv1.architecture``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import ImageRecord

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--type", "-t", choices=["image", "container"], default="image",
                        help="what to inspect: an image (default) or a working container")
    parser.add_argument("--format", "-f", default=None, help="Go template or dotted path")
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
    if args.format is None:
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
    elif args.format is None:
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


def render(template: str, data: Any) -> str:
    """Fill a template's actions from data; a template without actions is a path."""
    if "{{" not in template:
        value = _lookup(data, template.strip())
        return value if isinstance(value, str) else json.dumps(value)
    return _ACTION.sub(lambda m: _action(m.group(1), data), template)


def _action(expr: str, data: Any) -> str:
    from builder.errors import UsageError

    stages = [s.strip() for s in expr.split("|")]
    value: Any = None
    for position, stage in enumerate(stages):
        words = shlex.split(stage)
        if not words:
            raise UsageError(f"rendering --format: empty action in {{{{{expr}}}}}")
        func, rest = words[0], words[1:]
        if position > 0:
            rest = [*rest, "__piped__"]
        args = [value if w == "__piped__" else _lookup(data, w) if w.startswith(".")
                else w for w in rest]
        if func.startswith("."):
            value = _lookup(data, func)
        elif func == "json":
            value = json.dumps(args[0]) if args else ""
            value = _Raw(value)
        elif func == "index" and len(args) >= 2:
            value = args[0]
            for key in args[1:]:
                value = value.get(key) if isinstance(value, dict) else None
        elif func == "len" and args:
            value = len(args[0]) if args[0] is not None else 0
        elif func in ("upper", "lower") and args:
            value = getattr(str(args[0]), func)()
        else:
            raise UsageError(f"rendering --format: unsupported function {func!r}")
    return _go_string(value)


class _Raw(str):
    """Already formatted text (from json)."""


def _lookup(data: Any, path: str) -> Any:
    from builder.errors import UsageError

    value = data
    for key in [k for k in path.lstrip(".").split(".") if k]:
        if not isinstance(value, dict):
            raise UsageError(f"rendering --format: {path!r}: cannot index a non-object")
        if key in value:
            value = value[key]
            continue
        folded = {k.lower(): k for k in value}
        if key.lower() not in folded:
            return None
        value = value[folded[key.lower()]]
    return value


def _go_string(value: Any) -> str:
    """Go's default text form: [a b], map[k:v], <no value> for a missing key."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_string(value[k])}" for k in sorted(value)) + "]"
    return str(value)

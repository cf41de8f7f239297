"""Go templates for ``--format``, the subset Buildah users write.

``{{.Config.Cmd}}``, ``{{json .Config}}``, ``{{.Config | json}}``, ``{{index .Labels
"k"}}``, ``{{len .X}}``, ``{{upper .X}}``, text around actions; field names match
case-insensitively. A template without actions is a dotted path
(``.OCIv1.architecture``). Values print as Go prints them: ``[a b]``,
``map[k:v]``, ``<no value>``.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from builder.errors import UsageError

__all__ = ["render"]

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def render(template: str, data: Any) -> str:
    """Fill a template's actions from data; a template without actions is a path."""
    if "{{" not in template:
        value = _lookup(data, template.strip())
        return value if isinstance(value, str) else json.dumps(value)
    return _ACTION.sub(lambda m: _action(m.group(1), data), template)


def _action(expr: str, data: Any) -> str:
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

"""``RUN --mount=...``: parsing the flag and turning it into sandbox mounts.

Accepted keys follow BuildKit: ``type`` (bind, the default; cache; tmpfs;
secret), ``target``/``dst``/``destination``, ``source``/``src``, ``from``,
``ro``/``readonly``, ``rw``/``readwrite``, ``id``, ``sharing``
(shared|private|locked), ``uid``, ``gid``, ``mode`` (octal), ``size``
(tmpfs), ``required`` and ``env`` (secret). Errors are ``UsageError`` with
a plain message; the caller attaches the instruction's location.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import ContextError, UsageError
from builder.executor.sandbox import MountSpec

if TYPE_CHECKING:
    from builder.executor.copier import SourceTree

__all__ = ["RunMount", "parse_run_mount", "resolve_mounts"]

_TYPES = ("bind", "cache", "tmpfs", "secret")
_BOOLS = {"": True, "true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class RunMount:
    """One parsed ``--mount`` value, nothing resolved yet."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool | None = None
    id: str = ""
    sharing: str = "shared"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    size: int | None = None
    required: bool = False
    env: str = ""


def _bool(key: str, value: str) -> bool:
    if value.lower() not in _BOOLS:
        raise UsageError(f"parsing --mount: {key} must be true or false, not {value!r}")
    return _BOOLS[value.lower()]


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise UsageError(f"parsing --mount: {key} must be a number, not {value!r}") from None


def _size(value: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = value.lower().rstrip("b")
    scale = units.get(text[-1:], 1)
    return _int("size", text[:-1] if scale > 1 else text) * scale


def parse_run_mount(raw: str) -> RunMount:
    """Parse one ``--mount`` value such as ``type=cache,target=/root/.cache``."""
    import csv

    fields: dict[str, object] = {}
    for item in next(csv.reader([raw])) if raw else []:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key == "type":
            if value not in _TYPES:
                raise UsageError(f"parsing --mount: unknown mount type {value!r}")
            fields["type"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key == "from":
            fields["from_"] = value
        elif key in ("ro", "readonly"):
            fields["readonly"] = _bool(key, value)
        elif key in ("rw", "readwrite"):
            fields["readonly"] = not _bool(key, value)
        elif key == "id":
            fields["id"] = value
        elif key == "sharing":
            if value not in ("shared", "private", "locked"):
                raise UsageError(f"parsing --mount: sharing must be shared, private or locked, "
                                 f"not {value!r}")
            fields["sharing"] = value
        elif key in ("uid", "gid"):
            fields[key] = _int(key, value)
        elif key == "mode":
            fields["mode"] = _int(key, value, 8)
        elif key == "size":
            fields["size"] = _size(value)
        elif key == "required":
            fields["required"] = _bool(key, value)
        elif key == "env":
            fields["env"] = value
        else:
            raise UsageError(f"parsing --mount: unknown option {key!r}")
        if not eq and key not in ("ro", "readonly", "rw", "readwrite", "required"):
            raise UsageError(f"parsing --mount: {key} needs a value")
    mount = RunMount(**fields)  # type: ignore[arg-type]
    if not mount.target and not (mount.type == "secret"):
        raise UsageError("parsing --mount: a target is required")
    if mount.target and not mount.target.startswith("/"):
        mount = RunMount(**{**mount.__dict__, "target": "/" + mount.target})
    return mount


def _inside(base: Path, sub: str) -> Path:
    from builder.rootfs.paths import resolve_in_root

    return resolve_in_root(base, sub) if sub else base


def resolve_mounts(
    parsed: Sequence[RunMount],
    *,
    context: Path,
    stage_root: Callable[[str], Path],
    cache_root: Path,
    secrets: Mapping[str, bytes | Path],
    context_tree: SourceTree | None = None,
) -> list[MountSpec]:
    """Turn parsed mounts into ``MountSpec`` values with host sources. A bind from the
    context (``context_tree``: after the ignore file) never shows what the ignore file
    excludes (``builder.executor.contextview``)."""
    out: list[MountSpec] = []
    for m in parsed:
        if m.type == "bind":
            hidden: tuple[str, ...] = ()
            if not m.from_ and context_tree is not None:
                from builder.executor.contextview import mount_source

                source, hidden = mount_source(context_tree, m.source, m.target)
            else:
                base = stage_root(m.from_) if m.from_ else Path(context)
                source = _inside(base, m.source)
            if not os.path.lexists(source):
                raise ContextError(f"mounting {m.target}: source {m.source or '/'!r} not found")
            readonly = True if m.readonly is None else m.readonly
            out.append(MountSpec("bind", source, m.target, readonly=readonly,
                                 discard_writes=not readonly, hidden=hidden))
        elif m.type == "cache":
            key = m.id or m.target
            name = hashlib.sha256(key.encode()).hexdigest()[:32]
            out.append(MountSpec("cache", Path(cache_root) / name, m.target,
                                 readonly=bool(m.readonly), sharing=m.sharing, uid=m.uid,
                                 gid=m.gid, mode=m.mode))
        elif m.type == "tmpfs":
            out.append(MountSpec("tmpfs", None, m.target, readonly=False, mode=m.mode,
                                 size=m.size))
        else:
            secret_id = m.id or (m.target.rsplit("/", 1)[-1] if m.target else "")
            if not secret_id:
                raise UsageError("parsing --mount: a secret needs an id or a target")
            value = secrets.get(secret_id)
            if value is None:
                if m.required:
                    raise UsageError(f"mounting secret {secret_id!r}: secret not provided")
                continue
            data = value if isinstance(value, bytes) else Path(value).read_bytes()
            target = m.target or ("" if m.env else f"/run/secrets/{secret_id}")
            out.append(MountSpec("secret", None, target, readonly=True, uid=m.uid, gid=m.gid,
                                 mode=m.mode, data=data, env=m.env or None))
    return out

"""``RUN --mount=...``: parsed with the instruction, against a declared option table.

A mount value is a comma-separated (CSV-quoted) list of ``key=value`` options.
Each option is declared once below with its aliases, the kind of value it takes
and the mount types that accept it, as BuildKit and Buildah spell them. Parsing
refuses an unknown option (listing the ones the type accepts), an option the
type does not take, a missing value and a literal value of the wrong kind.

Option values are words: they may hold variables and are expanded when the step
runs (``RunMount.expanded``), except ``type``, which must be literal, and
``from``, which the plan resolves to a stage or an image. Numbers and choices
are checked again after expansion.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from builder.errors import ContainerfileError, InstructionError, StepError

__all__ = ["MOUNT_TYPES", "RunMount", "parse_mount"]

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_ALL = frozenset(MOUNT_TYPES)
_SHARING = ("shared", "private", "locked")
_WHAT = "RUN --mount"
_BOOLS = {"": True, "true": True, "1": True, "false": False, "0": False}

_Kind = Literal["word", "bool", "int", "octal", "size", "choice", "ignored"]


@dataclass(frozen=True)
class _Option:
    name: str  # the first of its names
    field: str
    kind: _Kind
    types: frozenset[str]
    negate: bool = False  # rw/readwrite: the value is "not readonly"


_OPTIONS: dict[str, _Option] = {}


def _declare(names: tuple[str, ...], field: str, kind: _Kind, types: frozenset[str],
             *, negate: bool = False) -> None:
    for name in names:
        _OPTIONS[name] = _Option(names[0], field, kind, types, negate)


_declare(("type",), "type", "choice", _ALL)
_declare(("target", "dst", "destination"), "target", "word", _ALL)
_declare(("source", "src"), "source", "word", frozenset({"bind", "cache"}))
_declare(("from",), "from_", "word", frozenset({"bind", "cache"}))
_declare(("ro", "readonly"), "readonly", "bool", frozenset({"bind", "cache"}))
_declare(("rw", "readwrite"), "readonly", "bool", frozenset({"bind", "cache"}), negate=True)
_declare(("id",), "id", "word", frozenset({"cache", "secret", "ssh"}))
_declare(("sharing",), "sharing", "choice", frozenset({"cache"}))
_declare(("uid",), "uid", "int", frozenset({"cache", "secret", "ssh"}))
_declare(("gid",), "gid", "int", frozenset({"cache", "secret", "ssh"}))
_declare(("mode",), "mode", "octal", frozenset({"cache", "secret", "ssh", "tmpfs"}))
_declare(("size",), "size", "size", frozenset({"tmpfs"}))
_declare(("required",), "required", "bool", frozenset({"secret", "ssh"}))
_declare(("env",), "env", "word", frozenset({"secret"}))
# Buildah's options with no meaning here: SELinux relabelling (no SELinux), bind
# propagation and tmpfs copy-up choices
_declare(("z", "Z", "relabel", "bind-propagation", "bind-nonrecursive", "tmpcopyup",
          "notmpcopyup"), "", "ignored", _ALL)


@dataclass(frozen=True)
class RunMount:
    """One ``--mount`` of a RUN, as written (words unexpanded). ``readonly`` None means
    the type's default (bind: read-only; cache: writable)."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool | None = None
    id: str = ""
    sharing: str = "shared"
    uid: str = ""
    gid: str = ""
    mode: str = ""
    size: str = ""
    required: bool = False
    env: str = ""

    def expanded(self, expand: Callable[[str], str]) -> RunMount:
        """The mount with every word expanded (``from`` stays as the plan resolved it);
        StepError when a number or choice is bad after expansion."""
        mount = dataclasses.replace(
            self, target=expand(self.target), source=expand(self.source), id=expand(self.id),
            sharing=expand(self.sharing), uid=expand(self.uid), gid=expand(self.gid),
            mode=expand(self.mode), size=expand(self.size), env=expand(self.env))
        for name in ("sharing", "uid", "gid", "mode", "size"):
            _check(name, _OPTIONS[name].kind, getattr(mount, name), StepError)
        return mount.with_defaults()

    def with_defaults(self) -> RunMount:
        """The target made absolute (once it holds no variable)."""
        if self.target and not self.target.startswith(("/", "$")):
            return dataclasses.replace(self, target="/" + self.target)
        return self

    @property
    def uid_number(self) -> int | None:
        return int(self.uid) if self.uid else None

    @property
    def gid_number(self) -> int | None:
        return int(self.gid) if self.gid else None

    @property
    def mode_number(self) -> int | None:
        return int(self.mode, 8) if self.mode else None

    @property
    def size_bytes(self) -> int | None:
        return _size(self.size) if self.size else None


def parse_mount(raw: str) -> RunMount:
    """Parse one ``--mount`` value such as ``type=cache,target=/root/.cache``;
    InstructionError (without a location: the caller has it) when it is bad."""
    seen: list[tuple[str, str, bool]] = []
    for item in next(csv.reader([raw])) if raw else []:
        key, eq, value = item.partition("=")
        name = key.strip()
        seen.append((name if name in ("z", "Z") else name.lower(), value, bool(eq)))
    kind = next((value for name, value, _ in seen if name == "type"), "bind")
    if "$" in kind:
        raise InstructionError(f"{_WHAT}: the mount type cannot hold variables")
    if kind not in MOUNT_TYPES:
        raise InstructionError(f"{_WHAT}: unknown mount type {kind!r} "
                               f"(accepted: {', '.join(MOUNT_TYPES)})")
    fields: dict[str, object] = {}
    for name, value, has_value in seen:
        option = _OPTIONS.get(name)
        if option is None or kind not in option.types:
            accepted = sorted({o.name for o in _OPTIONS.values()
                               if kind in o.types and o.kind != "ignored"})
            what = "unknown option" if option is None else "option not valid here:"
            raise InstructionError(f"{_WHAT}: {what} {name!r} (a {kind} mount takes "
                                   f"{', '.join(accepted)})")
        if option.kind == "ignored":
            continue
        if not has_value and option.kind != "bool":
            raise InstructionError(f"{_WHAT}: {name} needs a value")
        if option.kind == "bool":
            if value.lower() not in _BOOLS:
                raise InstructionError(f"{_WHAT}: {name} must be true or false, not {value!r}")
            fields[option.field] = _BOOLS[value.lower()] != option.negate
        else:
            _check(name, option.kind, value, InstructionError)
            fields[option.field] = value
    mount = RunMount(**fields)  # type: ignore[arg-type]
    if not mount.target and mount.type not in ("secret", "ssh"):
        raise InstructionError(f"{_WHAT}: a target is required")
    if mount.type == "secret" and not (mount.id or mount.target):
        raise InstructionError(f"{_WHAT}: a secret needs an id or a target")
    return mount.with_defaults()


def _check(name: str, kind: _Kind, value: str, error: type[ContainerfileError]) -> None:
    """A literal value of the declared kind (words with variables wait for expansion)."""
    if "$" in value or not value:
        return
    if kind == "choice" and name == "sharing" and value not in _SHARING:
        raise error(f"{_WHAT}: sharing must be {', '.join(_SHARING)}, not {value!r}")
    try:
        if kind == "int":
            int(value)
        elif kind == "octal":
            int(value, 8)
        elif kind == "size":
            _size(value)
    except ValueError:
        what = {"int": "a number", "octal": "an octal number", "size": "a size"}[kind]
        raise error(f"{_WHAT}: {name} must be {what}, not {value!r}") from None


def _size(value: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = value.lower().rstrip("b")
    scale = units.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale

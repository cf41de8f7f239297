"""Users and owners from a root filesystem's own /etc/passwd and /etc/group.

The host's user database is never consulted. Two rules, both Buildah's:

* ``resolve_user`` is who a RUN runs as (Buildah's ``userForRun``): ``""`` is
  root; a name must exist in passwd (``root`` too); a numeric uid that is not
  listed gets gid 0; ``user:group`` takes the group by name or number and then no
  supplementary groups are added; otherwise the supplementary groups are those
  whose member list names the user.
* ``copy_owner`` is who owns what COPY/ADD ``--chown`` writes and the directories
  WORKDIR creates (Buildah's ``userForCopy``): a number is that uid with gid = uid
  (no lookup) unless a group is given, a name comes from passwd with its primary
  group, ``:GROUP`` is root with that group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.errors import ContextError, StepError, UsageError
from builder.rootfs.paths import resolve_in_root

__all__ = ["ResolvedUser", "copy_owner", "resolve_user", "resolve_user_in_root"]


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _table(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith(("#", "+", "-")):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def _id(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(spec: str, passwd: str, group: str) -> ResolvedUser:
    """Resolve a USER value against the given passwd and group file contents."""
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"
    users = _table(passwd, 7)
    groups = _table(group, 4)
    name: str | None = None
    uid = _id(user_part)
    row = next((r for r in users if (r[0] == user_part if uid is None else _id(r[2]) == uid)), None)
    if row is None and uid is None:
        raise UsageError(f"resolving user {user_part!r}: no matching entries in passwd file")
    if row is not None:
        name, uid, gid, home = row[0], int(row[2]), int(row[3]), row[5]
    else:
        gid, home = 0, "/"
    assert uid is not None
    if group_part:
        gid_value = _id(group_part)
        if gid_value is None:
            match = next((g for g in groups if g[0] == group_part), None)
            if match is None:
                raise UsageError(
                    f"resolving group {group_part!r}: no matching entries in group file")
            gid_value = int(match[2])
        return ResolvedUser(uid, gid_value, (gid_value,), home or "/")
    extra = [int(g[2]) for g in groups
             if name is not None and name in g[3].split(",") and g[2].isdigit()]
    ordered = tuple(dict.fromkeys([gid, *extra]))
    return ResolvedUser(uid, gid, ordered, home or "/")


def resolve_user_in_root(root: Path, spec: str) -> ResolvedUser:
    """Resolve ``spec`` from the files inside ``root`` (symlinks kept inside it)."""
    def read(path: str) -> str:
        try:
            return resolve_in_root(root, path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    return resolve_user(spec, read("/etc/passwd"), read("/etc/group"))


def copy_owner(root: Path, spec: str) -> tuple[int, int]:
    """``user[:group]`` -> (uid, gid) for files a step writes (see the module docstring);
    StepError when a name is not in the root's passwd or group file."""
    user, sep, group = spec.partition(":")
    if not user and not group:
        raise StepError(f"looking up UID/GID for {spec!r}: no user or group given")
    uid, primary = _lookup(root, "etc/passwd", user, "uid for user") if user else (0, 0)
    if sep and group:
        gid, _ = _lookup(root, "etc/group", group, "gid for group")
    else:
        gid = primary if primary is not None else uid
    return uid, gid


def _lookup(root: Path, table: str, name: str, what: str) -> tuple[int, int | None]:
    if name.isdigit():
        return int(name), None
    try:
        text = resolve_in_root(root, table).read_text(encoding="utf-8", errors="replace")
    except (OSError, ContextError):
        text = ""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            second = fields[3] if len(fields) > 3 and fields[3].isdigit() else None
            return int(fields[2]), int(second) if second is not None else None
    raise StepError(f"looking up UID/GID for {name!r}: can't find {what} {name!r}")

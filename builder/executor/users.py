"""USER resolution from a root filesystem's own /etc/passwd and /etc/group.

The host's user database is never consulted. Semantics follow Docker and
Buildah: ``""`` is root; a name must exist in passwd; a numeric uid that is
not listed gets gid 0; ``user:group`` takes the group by name or number and
then no supplementary groups are added; otherwise the supplementary groups
are those whose member list names the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError
from builder.rootfs.paths import resolve_in_root

__all__ = ["ResolvedUser", "resolve_user", "resolve_user_in_root"]


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

"""Resolving container paths on the host without leaving the root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["resolve_in_root"]

_MAX_LINKS = 255


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True,
                    visible: Callable[[str], bool] | None = None,
                    dangling: bool = True) -> Path:
    """The host path of ``path`` as the container sees it, symlinks included.

    Symlinks are followed as if ``root`` were ``/`` (absolute targets restart
    at ``root``, ``..`` stops at ``root``), so the result is always inside
    ``root``. A missing component ends resolution; the rest is appended.
    With ``follow_last`` false a symlink in the last component is kept.

    ``visible(rel)`` (a path relative to ``root``) hides paths, as the ignore file
    hides context paths: a hidden component counts as missing, so a symlink is never
    followed out of a hidden path or to one (the result is then the hidden path, and
    the caller's own ``visible`` check of it fails).

    With ``dangling`` false, a symlink on the way whose target is missing raises
    ``FileNotFoundError`` (missing components of ``path`` itself still end resolution).
    """
    root = Path(os.path.abspath(root))
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    from_links = 0  # how many of the first pending parts come from link targets
    while pending:
        part = pending.pop(0)
        from_link = from_links > 0
        from_links = max(from_links - 1, 0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if visible is not None and not visible("/".join([*resolved, part])):
            resolved.append(part)
            resolved.extend(pending)
            return _join(root, resolved)
        if not pending and not follow_last:
            resolved.append(part)
            break
        try:
            target = os.readlink(candidate)
        except (FileNotFoundError, NotADirectoryError):
            if from_link and not dangling:
                raise FileNotFoundError(2, f"a symlink on the way to {path} dangles") from None
            resolved.append(part)
            resolved.extend(p for p in pending if p not in ("", "."))
            return _join(root, resolved)
        except OSError:  # EINVAL: not a symlink
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(40, f"too many levels of symbolic links: {path}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")]
        pending = parts + pending
        from_links += len(parts)
    return _join(root, resolved)


def _join(root: Path, parts: list[str]) -> Path:
    # ".." left in a missing tail is dropped the same way as above
    clean: list[str] = []
    for part in parts:
        if part == "..":
            if clean:
                clean.pop()
        else:
            clean.append(part)
    return root.joinpath(*clean)

"""Which repositories of a registry are known to hold a blob, for cross-repository mounts.

Kept as a small JSON file in the store root: ``{registry: {digest: [repo, ...]}}``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

__all__ = ["BlobInfo"]

_MAX_REPOS = 8


class BlobInfo:
    """Read once, updated in memory, written back with ``save``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        self._data: dict[str, dict[str, list[str]]] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._data = loaded
            except (OSError, ValueError):
                pass

    def repositories(self, registry: str, digest: str) -> list[str]:
        with self._lock:
            return list(self._data.get(registry, {}).get(digest, []))

    def record(self, registry: str, repository: str, digest: str) -> None:
        with self._lock:
            repos = self._data.setdefault(registry, {}).setdefault(digest, [])
            if repository in repos:
                return
            repos.insert(0, repository)
            del repos[_MAX_REPOS:]
            self._dirty = True

    def save(self) -> None:
        """Merge with the file on disk (another process may have written it) and replace it."""
        if self.path is None or not self._dirty:
            return
        on_disk = BlobInfo(self.path)
        with self._lock:
            for registry, blobs in self._data.items():
                for digest, repos in blobs.items():
                    for repo in reversed(repos):
                        on_disk.record(registry, repo, digest)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blobinfo-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(on_disk._data, out)
            os.replace(tmp, self.path)
        except OSError:
            return  # only an optimisation: losing it costs an upload later
        self._dirty = False

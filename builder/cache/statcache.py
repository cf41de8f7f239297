"""Content digests of context files, remembered by (device, inode, size, mtime, ctime).

One file per context directory under ``<store>/cache/stat/``: an unchanged
file is never read twice, across builds. A touched file (new mtime and ctime)
is read again; its digest, and so the cache key, stays the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from builder.image.layout import write_atomic

_READ = 1 << 20


def digest_file(path: str) -> str:
    """sha256 (hex) of a file's content, read through a raw descriptor."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, _READ):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _stamp(st: os.stat_result) -> list[int | str]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class StatCache:
    """sha256 of the regular files under one context directory, cached by stat."""
    def __init__(self, store_root: Path, context: Path) -> None:
        name = hashlib.sha256(os.fsencode(os.path.realpath(context))).hexdigest()[:32]
        self.path = Path(store_root) / "cache" / "stat" / f"{name}.json"
        self._lock = threading.Lock()
        self._entries: dict[str, list[int | str]] | None = None
        self._seen: dict[str, list[int | str]] = {}
        self.hashed = 0  # files read this time

    def _load(self) -> dict[str, list[int | str]]:
        if self._entries is None:
            try:
                loaded = json.loads(self.path.read_bytes())
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def known(self, rel: str, st: os.stat_result) -> bool:
        """Whether ``digest`` would answer without reading the file."""
        with self._lock:
            entry = self._load().get(rel)
        return entry is not None and entry[:5] == _stamp(st)

    def digest(self, rel: str, path: str, st: os.stat_result) -> str:
        """The sha256 (hex) of the regular file ``path`` known as ``rel``."""
        stamp = _stamp(st)
        with self._lock:
            known = self._load().get(rel)
        if known is not None and known[:5] == stamp:
            self._seen[rel] = known
            return str(known[5])
        value = digest_file(path)
        with self._lock:
            self._seen[rel] = [*stamp, value]
            self.hashed += 1
        return value

    def save(self) -> None:
        """Write what this build saw (entries of files it did not look at are kept)."""
        with self._lock:
            entries = self._load()
            if all(entries.get(k) == v for k, v in self._seen.items()):
                return
            entries.update(self._seen)

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.path, json.dumps(entries, separators=(",", ":")).encode())
            except OSError:
                pass  # only a cache: the next build hashes again

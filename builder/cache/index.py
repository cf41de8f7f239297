"""The local index of cached steps: ``<store>/cache/steps/<key>.json``.

An entry holds what a step produced: the history entry and, when the step
changed the file system, the layer (descriptor and diff_id). The layer blob
lives with the other blobs; an entry whose blob is gone is a miss.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.image.spec import Descriptor, History

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class CacheEntry:
    """What one step produced."""

    history: History
    layer: Descriptor | None = None
    diff_id: str | None = None
    stored: float = 0.0  # when the step ran (seconds since the epoch)

    def to_json(self) -> bytes:
        return json.dumps({
            "history": self.history.to_json(),
            "layer": self.layer.to_json() if self.layer else None,
            "diffID": self.diff_id,
            "stored": self.stored,
        }, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CacheEntry:
        raw = json.loads(data)
        layer = raw.get("layer")
        return cls(History.from_json(raw["history"]),
                   Descriptor.from_json(layer) if layer else None,
                   raw.get("diffID"), float(raw.get("stored") or 0))


def steps_dir(store_root: Path) -> Path:
    return Path(store_root) / "cache" / "steps"


@contextlib.contextmanager
def claim(key: str) -> Iterator[None]:
    """Hold while looking up, running and recording the step ``key``: two builds in
    one process that reach the same step run it once (the second one hits)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        yield


class CacheIndex:
    """Lookups and records of cached steps in one store."""

    def __init__(self, store: Any, *, ttl: float | None = None) -> None:
        self.store = store
        self.dir = steps_dir(store.root)
        self.ttl = ttl

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` when it exists, is fresh and its blob is here."""
        try:
            entry = CacheEntry.from_json((self.dir / f"{key}.json").read_bytes())
        except Exception:  # noqa: BLE001 - a damaged entry is a miss
            return None
        if self.ttl is not None and entry.stored < time.time() - self.ttl:
            return None
        if entry.layer is not None and not self.store.layout.has_blob(entry.layer.digest):
            return None
        return entry

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{key}.json").unlink()

    def put(self, key: str, entry: CacheEntry) -> None:
        from builder.image.layout import write_atomic

        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / f"{key}.json", entry.to_json())


def _entries(store_root: Path) -> Iterator[tuple[Path, CacheEntry | None]]:
    directory = steps_dir(store_root)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(".json"):
            continue
        path = directory / name
        try:
            yield path, CacheEntry.from_json(path.read_bytes())
        except Exception:  # noqa: BLE001 - damaged: reported as None
            yield path, None


def referenced_blobs(store: Any) -> set[str]:
    """Layer blobs cache entries use (garbage collection may keep them)."""
    return {e.layer.digest for _, e in _entries(store.root) if e is not None and e.layer}


def prune_cache(store: Any) -> int:
    """Remove every cache entry, the stat caches and the layer blobs only the cache
    used; bytes freed. Cache mount contents are left alone."""
    freed = 0
    used_by_images: set[str] = set()
    for record in store.images():
        used_by_images.update(d.digest for d in record.manifest.layers)
        used_by_images.add(record.manifest.config.digest)
    blobs: set[str] = set()
    for path, entry in list(_entries(store.root)):
        if entry is not None and entry.layer is not None:
            blobs.add(entry.layer.digest)
        with contextlib.suppress(OSError):
            freed += path.stat().st_size
            path.unlink()
    stat_dir = Path(store.root) / "cache" / "stat"
    for name in os.listdir(stat_dir) if stat_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            freed += (stat_dir / name).stat().st_size
            (stat_dir / name).unlink()
    with store.lock():
        for digest in blobs - used_by_images - store.container_blobs():
            path = store.layout.blob_path(digest)
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                store.layout.remove_blob(digest)
                freed += size
    return freed

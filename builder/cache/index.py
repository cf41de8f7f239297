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

from builder.errors import PybuildError
from builder.image.layer import Layer
from builder.image.layout import write_atomic
from builder.image.spec import Descriptor, History
from builder.store.store import Store, register_gc_roots

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class CacheEntry:
    """What one step produced."""

    history: History
    layer: Layer | None = None
    stored: float = 0.0  # when the step ran (seconds since the epoch)

    def to_json(self) -> bytes:
        return json.dumps({
            "history": self.history.to_json(),
            "layer": self.layer.descriptor().to_json() if self.layer else None,
            "diffID": self.layer.diff_id if self.layer else None,
            "stored": self.stored,
        }, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CacheEntry:
        raw = json.loads(data)
        layer = raw.get("layer")
        diff_id = raw.get("diffID")
        if layer and not diff_id:  # a layer nothing can verify: not an entry to trust
            raise ValueError("cache entry: a layer without a diffID")
        return cls(History.from_json(raw["history"]),
                   Layer.of(Descriptor.from_json(layer), diff_id) if layer else None,
                   float(raw.get("stored") or 0))


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
    def __init__(self, store: Store, *, ttl: float | None = None) -> None:
        self.store = store
        self.dir = steps_dir(store.root)
        self.ttl = ttl

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` when it exists, is fresh and its blob is here."""
        entry = _read(self.dir / f"{key}.json")
        if entry is None:  # missing or damaged: a miss
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
        yield path, _read(path)


def _read(path: Path) -> CacheEntry | None:
    """The entry stored at ``path``; None when it is missing or damaged."""
    try:
        return CacheEntry.from_json(path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError, AttributeError, PybuildError):
        return None


class _CacheRoots:
    """Garbage collection keeps the layer blobs of cached steps (their extracted layers
    go with ``prune``)."""
    directory = "cache"

    def blobs(self, store: Store) -> set[str]:
        return {e.layer.digest for _, e in _entries(store.root) if e is not None and e.layer}

    def layers(self, store: Store) -> set[str]:
        return set()


GC_ROOTS = _CacheRoots()
register_gc_roots(GC_ROOTS)

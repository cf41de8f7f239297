"""The parse cache: parsed Containerfiles kept in ``<store>/cache/parsed/``, so a rebuild
skips the parser (lark's tables and the instruction parser cost more than the build
of a fully cached Containerfile)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path

from builder import replay
from builder.context import ContainerfileSource
from builder.instructions.model import Containerfile
from builder.instructions.parse import parse_containerfile
from builder.store import Store

__all__ = ["parse_cached"]


def parse_cached(store: Store, source: ContainerfileSource) -> Containerfile:
    """The parsed Containerfile, found under a key of the text, its name and the parser's
    source files, or parsed and kept."""
    key = hashlib.sha256(b"%s\0%s\0%s" % (replay.code_fingerprint(), source.display.encode(),
                                            source.text)).hexdigest()
    path = Path(store.root) / "cache" / "parsed" / f"{key}.pickle"
    try:
        with open(path, "rb") as f:
            cached = pickle.load(f)
        if isinstance(cached, Containerfile):
            return cached
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, TypeError, ValueError):
        pass  # a missing, torn or stale entry is a miss
    containerfile = parse_containerfile(source.text, source.display)
    with contextlib.suppress(OSError, pickle.PicklingError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.tmp_dir() / f"parsed-{key}"
        tmp.write_bytes(pickle.dumps(containerfile, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
    return containerfile

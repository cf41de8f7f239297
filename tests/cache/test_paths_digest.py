"""The content digest of context paths: what changes it, and hashing on threads gives
the same digest as hashing in order."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from builder.cache import keys
from builder.cache.statcache import StatCache


def _tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    for i in range(12):
        (root / "d" / f"f{i}").write_bytes(bytes([i]) * (1000 * i))
    (root / "d" / "e" / "g").write_text("g\n")
    (root / "d" / "link").symlink_to("f1")
    (root / "top").write_text("top\n")


@pytest.mark.parametrize("threshold", [0, 1 << 60])
def test_threads_and_order_agree(threshold: int, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ctx"
    _tree(root)
    serial = keys.paths_digest(str(root), ["d", "top", "missing"])
    monkeypatch.setattr(keys, "_PARALLEL_BYTES", threshold)
    monkeypatch.setattr(keys, "_PARALLEL_FILE", 0)
    stats = StatCache(tmp_path / "store", root)
    assert keys.paths_digest(str(root), ["d", "top", "missing"], stats=stats) == serial
    assert keys.paths_digest(str(root), ["d", "top", "missing"], stats=stats) == serial


CHANGES = {
    "content": lambda r: (r / "d" / "f3").write_bytes(b"x"),
    "mode": lambda r: os.chmod(r / "d" / "f3", 0o600),
    "new file": lambda r: (r / "d" / "e" / "h").write_text("h"),
    "link target": lambda r: ((r / "d" / "link").unlink(), (r / "d" / "link").symlink_to("f2")),
    "removed": lambda r: (r / "d" / "e" / "g").unlink(),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_changes_change_the_digest(name: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(keys, "_PARALLEL_FILE", 0)
    root = tmp_path / "ctx"
    _tree(root)
    before = keys.paths_digest(str(root), ["d"])
    CHANGES[name](root)
    assert keys.paths_digest(str(root), ["d"]) != before


def test_mtime_does_not_change_the_digest(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    _tree(root)
    before = keys.paths_digest(str(root), ["d"])
    os.utime(root / "d" / "f3", (1, 1))
    assert keys.paths_digest(str(root), ["d"]) == before


def _evict(root: Path) -> None:
    """Drop the files' pages from the page cache, as time on a busy machine does."""
    os.sync()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def test_a_cold_page_cache_is_read_ahead_and_gives_the_same_digest(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    for d in range(8):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(64):
            (root / f"d{d}" / f"f{i}").write_bytes(os.urandom(100 + i))
    paths = sorted(str(p) for p in root.rglob("f*"))
    warm = keys.paths_digest(str(root), [""])
    assert not keys._cold(paths)
    _evict(root)
    if not keys._cold(paths):
        pytest.skip("this file system cannot tell cached pages from others (RWF_NOWAIT)")
    assert keys.paths_digest(str(root), [""]) == warm
    assert not keys._cold(paths)  # read ahead, then hashed
    _evict(root)
    keys._prefetch(paths)()  # stopped at once: nothing breaks, nothing is left running
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
    assert keys.paths_digest(str(root), [""]) == warm

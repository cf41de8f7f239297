"""`pybuild prune`: dangling images, unused blobs, caches and extracted layers go;
named images stay; it waits for other processes' pins."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Pybuild

from .conftest import build_context


def test_prune_frees_what_no_image_needs(store_ab: Pybuild, tmp_path: Path) -> None:
    root = store_ab.root
    # a dangling image: rebuild "a" with other content, the old one loses its name
    store_ab("bud", "-q", "-t", "a", build_context(tmp_path / "a2", b"other" * 1000))
    (root / "cache" / "pip").mkdir(parents=True)
    (root / "cache" / "pip" / "wheel").write_bytes(b"w" * 5000)
    (root / "layers" / ("f" * 64)).mkdir(parents=True)
    (root / "layers" / ("f" * 64) / "file").write_bytes(b"x" * 5000)
    blobs_before = len(os.listdir(root / "blobs" / "sha256"))
    res = store_ab("prune")
    assert res.stdout.startswith("deleted image "), res.stdout
    assert "freed " in res.stdout and "1 dangling image" in res.stdout
    assert len(os.listdir(root / "blobs" / "sha256")) == blobs_before - 3
    assert not (root / "layers" / ("f" * 64)).exists()
    assert os.listdir(root / "cache") == []
    listed = store_ab("images").stdout
    assert "localhost/a" in listed and "localhost/b" in listed and "<none>" not in listed
    assert store_ab("check").returncode == 0
    again = store_ab("prune").stdout
    assert again.startswith("freed 0 B: 0 dangling images, 0 blobs")


def test_prune_all_drops_every_extracted_layer(store_ab: Pybuild) -> None:
    layers = store_ab.root / "layers"
    kept = [n for n in os.listdir(layers)] if layers.exists() else []
    store_ab("prune")
    assert sorted(os.listdir(layers) if layers.exists() else []) == sorted(kept)
    store_ab("prune", "--all")
    assert not layers.exists() or os.listdir(layers) == []
    assert store_ab("check").returncode == 0


def test_prune_waits_for_pins(store_ab: Pybuild) -> None:
    code = ("import sys\nfrom pathlib import Path\nfrom builder.store import Store\n"
            "s = Store(Path(sys.argv[1]))\n"
            "with s.pin():\n"
            "    print(s.layout.put_blob(b'in flight')[0], flush=True)\n"
            "    sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store_ab.root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    digest = holder.stdout.readline().strip()
    blob = store_ab.root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    prune = subprocess.Popen([sys.executable, "-m", "builder", "prune"], env=store_ab.env,
                             stdout=subprocess.PIPE, text=True)
    _wait_until_open(prune.pid, store_ab.root / "gc.lock")  # prune waits for the pin now
    assert prune.poll() is None and blob.exists()  # still waiting, blob untouched
    holder.communicate("\n")
    out, _ = prune.communicate(timeout=60)
    assert prune.returncode == 0 and "1 blob" in out
    assert not blob.exists()


def _wait_until_open(pid: int, path: Path, timeout: float = 60) -> None:
    """Wait until process ``pid`` has ``path`` open (prune opens gc.lock, then waits for
    every pin to end before it collects anything)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            targets = set()
        if str(path) in targets:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never opened {path}")

"""Two store roots as two CI runners sharing the cache through a real registry."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from tests.conftest import Pybuild, copy_store

pytestmark = pytest.mark.registry

CONTAINERFILE = """FROM localhost/busybox:latest
COPY app /app
RUN cat /app/a > /app/copy
RUN --mount=type=cache,target=/cache,id=downloads \\
    test -f /cache/fetched || echo warm-cache-content > /cache/fetched; \\
    cp /cache/fetched /fetched-copy
"""


def _runner(tmp_path: Path, name: str, busybox_store: Path) -> Pybuild:
    return copy_store(busybox_store, Pybuild(tmp_path / name), "cache")


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "app" / "a").write_text("a\n")
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    return ctx


def _hits(output: str) -> int:
    return len(re.findall(r"^--> Using cache ", output, re.M))


def _layer_texts(root: Path, image: str) -> bytes:
    """Every layer of ``image`` in a store, decompressed and concatenated."""
    index = json.loads((root / "index.json").read_text())
    digest = next(d["digest"] for d in index["manifests"]
                  if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == image)
    manifest = json.loads((root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    out = b""
    for layer in manifest["layers"]:
        data = (root / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        out += gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


def test_cache_from_another_runner(tmp_path: Path, registry, busybox_store: Path) -> None:
    repo = f"{registry.host}/cache/app"
    ctx = _context(tmp_path)
    a = _runner(tmp_path, "a", busybox_store)
    first = a("bud", "--timestamp", "0", "--cache-to", repo, "--cache-mounts", "-t", "app", ctx)
    assert _hits(first.stdout) == 0
    a_id = first.stdout.split()[-1]

    b = _runner(tmp_path, "b", busybox_store)
    second = b("bud", "--timestamp", "0", "--cache-from", repo, "-t", "app", ctx)
    assert _hits(second.stdout) == 3, second.stdout  # COPY, RUN, RUN
    assert second.stdout.split()[-1] == a_id

    ctx_changed = ctx / "app" / "a"
    ctx_changed.write_text("changed\n")
    c = _runner(tmp_path, "c", busybox_store)
    third = c("bud", "--timestamp", "0", "--cache-from", repo, "--cache-ttl", "1h", "-t", "app",
              ctx)
    assert _hits(third.stdout) == 0


def test_cache_mounts_travel(tmp_path: Path, registry, busybox_store: Path) -> None:
    repo = f"{registry.host}/cache/mounts"
    ctx = _context(tmp_path)
    (ctx / "Containerfile").write_text(CONTAINERFILE.replace(
        "echo warm-cache-content", "echo filled-on-runner-a"))
    a = _runner(tmp_path, "a", busybox_store)
    a("bud", "--cache-to", repo, "--cache-mounts", "-t", "app", ctx)
    # runner B changes the step (no layer hit) but starts with runner A's cache mount
    (ctx / "Containerfile").write_text(CONTAINERFILE.replace(
        "echo warm-cache-content", "echo filled-on-runner-b"))
    b = _runner(tmp_path, "b", busybox_store)
    b("bud", "--cache-from", repo, "--cache-mounts", "-t", "app", ctx)
    layers = _layer_texts(b.root, "localhost/app:latest")
    assert b"filled-on-runner-a" in layers  # the copy the RUN made from the restored cache
    assert b"filled-on-runner-b" not in layers
    cache_dirs = [p for p in (b.root / "cache").iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)]
    assert [(p / "fetched").read_text() for p in cache_dirs] == ["filled-on-runner-a\n"]
    # the cache directory itself never became part of a layer
    assert b"cache/fetched" not in _layer_texts(a.root, "localhost/app:latest")
    assert b"cache/fetched" not in layers

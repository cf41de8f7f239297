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


def _poison(registry_url: str, repository: str, how: str) -> int:
    """Rewrite every step entry of a cache repository that has a layer: ``diff_id`` gives
    it a wrong diff_id, ``truncated`` a layer cut in half (its descriptor matching the
    cut blob). Returns how many entries were changed."""
    import hashlib

    import requests

    from builder.cache.remote import ENTRY_MEDIA_TYPE

    def upload(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = requests.post(f"{registry_url}/v2/{repository}/blobs/uploads/", timeout=30)
        location = started.headers["Location"]
        location = registry_url + location if location.startswith("/") else location
        joiner = "&" if "?" in location else "?"
        assert requests.put(f"{location}{joiner}digest={digest}", data=data,
                            timeout=30).status_code == 201
        return digest

    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    tags = requests.get(f"{registry_url}/v2/{repository}/tags/list", timeout=30).json()["tags"]
    changed = 0
    for tag in tags:
        manifest = requests.get(f"{registry_url}/v2/{repository}/manifests/{tag}",
                                headers=accept, timeout=30).json()
        if manifest["config"]["mediaType"] != ENTRY_MEDIA_TYPE or not manifest["layers"]:
            continue
        entry = json.loads(requests.get(
            f"{registry_url}/v2/{repository}/blobs/{manifest['config']['digest']}",
            timeout=30).content)
        if how == "diff_id":
            entry["diffID"] = "sha256:" + "0" * 64
        else:
            blob = requests.get(f"{registry_url}/v2/{repository}/blobs/"
                                f"{entry['layer']['digest']}", timeout=30).content
            cut = blob[: len(blob) // 2]
            entry["layer"].update(digest=upload(cut), size=len(cut))
            manifest["layers"] = [entry["layer"]]
        data = json.dumps(entry, sort_keys=True).encode()
        manifest["config"].update(digest=upload(data), size=len(data))
        put = requests.put(f"{registry_url}/v2/{repository}/manifests/{tag}",
                           data=json.dumps(manifest), timeout=30,
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
        changed += 1
    return changed


@pytest.mark.parametrize("how, problem", [("diff_id", "the config says sha256:0000"),
                                          ("truncated", "truncated or corrupt gzip stream")])
def test_a_poisoned_cache_entry_is_refused(tmp_path: Path, registry, busybox_store: Path,
                                           how: str, problem: str) -> None:
    """A --cache-from layer is verified as an image layer is: a bad one is named in a
    warning and the step runs instead; the image is the one built without the cache."""
    repo = f"{registry.host}/cache/{how.replace('_', '-')}"
    ctx = _context(tmp_path)
    a = _runner(tmp_path, "a", busybox_store)
    built = a("bud", "--timestamp", "0", "--cache-to", repo, "-t", "app", ctx).stdout
    assert _poison(registry.url, f"cache/{how.replace('_', '-')}", how) == 3
    b = _runner(tmp_path, "b", busybox_store)
    res = b("bud", "--timestamp", "0", "--cache-from", repo, "-t", "app", ctx)
    assert _hits(res.stdout) == 0, res.output
    assert "WARN" in res.stderr and "verifying image" in res.stderr and problem in res.stderr
    assert res.stdout.split()[-1] == built.split()[-1]

"""Manifest lists: create, add, annotate, inspect, remove, rm, and push to a real registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.store import Store
from builder.store.manifests import add_to_manifest, find_manifest_list
from tests.conftest import Pybuild

PLATFORMS = ("linux/amd64", "linux/arm64/v8")


def two_platforms(pybuild: Pybuild, tmp_path: Path) -> list[str]:
    """Build one tiny image per platform; returns their manifest digests."""
    context = tmp_path / "ctx"
    context.mkdir()
    digests = []
    for platform in PLATFORMS:
        (context / "arch.txt").write_text(platform)
        (context / "Containerfile").write_text("FROM scratch\nCOPY arch.txt /\n")
        tag = "img:" + platform.split("/")[1]
        pybuild("bud", "-q", "--platform", platform, "-t", tag, context)
        digests.append(json.loads(pybuild("inspect", tag).stdout)["FromImageDigest"])
    return digests


def entries(pybuild: Pybuild, name: str) -> list[dict]:
    return json.loads(pybuild("manifest", "inspect", name).stdout)["manifests"]


def test_create_add_annotate_remove(pybuild: Pybuild, tmp_path: Path) -> None:
    amd, arm = two_platforms(pybuild, tmp_path)
    pybuild("manifest", "create", "multi", "img:amd64")
    pybuild("manifest", "add", "multi", "img:arm64")
    listed = entries(pybuild, "multi")
    assert [(e["digest"], e["platform"]) for e in listed] == [
        (amd, {"architecture": "amd64", "os": "linux"}),
        (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]
    pybuild("manifest", "annotate", "--annotation", "k=v", "--variant", "v9", "multi", arm)
    assert entries(pybuild, "localhost/multi:latest")[1]["annotations"] == {"k": "v"}
    assert entries(pybuild, "multi")[1]["platform"]["variant"] == "v9"
    again = pybuild("manifest", "create", "multi", check=False)
    assert again.returncode == 125 and "exists" in again.stderr
    pybuild("manifest", "remove", "multi", amd)
    assert [e["digest"] for e in entries(pybuild, "multi")] == [arm]
    assert "multi" not in pybuild("images").stdout  # lists are not images
    pybuild("manifest", "rm", "multi")
    gone = pybuild("manifest", "inspect", "multi", check=False)
    assert gone.returncode == 125 and "no such list" in gone.stderr
    assert pybuild("images", "-q").stdout.count("\n") == 2  # the images stay


def test_add_to_manifest_replaces_same_platform(pybuild: Pybuild, tmp_path: Path) -> None:
    amd, arm = two_platforms(pybuild, tmp_path)
    store = Store(pybuild.root)
    add_to_manifest(store, "built", amd, "linux/amd64")
    add_to_manifest(store, "built", arm, "linux/arm64/v8")
    add_to_manifest(store, "built", arm, "linux/amd64")  # a rebuild for the same platform
    found = find_manifest_list(store, "built")
    assert [(d.digest, d.platform.architecture) for d in found.index.manifests] == [
        (arm, "amd64")]
    layout = json.loads((pybuild.root / "index.json").read_text())
    names = [d.get("annotations", {}).get("org.opencontainers.image.ref.name")
             for d in layout["manifests"]]
    assert "localhost/built:latest" in names


def test_push_two_platform_list(pybuild: Pybuild, tmp_path: Path, registry: object) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    amd, arm = two_platforms(pybuild, tmp_path)
    pybuild("manifest", "create", "multi", "img:amd64", "img:arm64")
    host = registry.host  # type: ignore[attr-defined]
    dest = f"docker://{host}/multi/app:1.0"
    digest = pybuild("manifest", "push", "--tls-verify=false", "-q", "multi",
                     dest).stdout.strip()
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", dest],
                         capture_output=True, check=True).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["digest"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        (amd, "amd64"), (arm, "arm64")]
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    for arch in ("amd64", "arm64"):
        inspected = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--override-arch", arch,
             "--override-variant", "v8" if arch == "arm64" else "", dest],
            capture_output=True, check=True, text=True).stdout)
        assert inspected["Architecture"] == arch and len(inspected["Layers"]) == 1

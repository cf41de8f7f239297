"""`pybuild inspect docker://REF` reads a registry image without pulling; `search` uses the catalog."""

from __future__ import annotations

import json
import os

from registry_fixtures import Registry, layer_tar, seed_store, sha256


def _push(pybuild, registry: Registry, repo: str) -> bytes:
    manifest, _ = seed_store(pybuild.root, f"localhost/{repo}:1",
                             [layer_tar({"f": os.urandom(100)})])
    pybuild("push", f"{repo}:1", f"docker://{registry.host}/{repo}:1")
    return manifest


def test_inspect_remote_without_pulling(pybuild, registry: Registry) -> None:
    manifest = _push(pybuild, registry, "inspect/remote")
    ref = f"docker://{registry.host}/inspect/remote:1"
    raw = pybuild("inspect", "--raw", ref)
    assert sha256(raw.stdout.encode()) == sha256(manifest)
    summary = json.loads(pybuild("inspect", ref).stdout)
    assert summary["Digest"] == sha256(manifest)
    assert summary["RepoTags"] == ["1"]
    assert pybuild("inspect", "--format", "{{.Digest}}", ref).stdout.strip() == sha256(manifest)


def test_inspect_remote_missing_names_registry_and_status(pybuild, registry: Registry) -> None:
    res = pybuild("inspect", f"docker://{registry.host}/inspect/nothing:1", check=False)
    assert res.returncode != 0
    assert registry.host in res.stderr and "404" in res.stderr


def test_search_lists_matching_repositories(pybuild, registry: Registry) -> None:
    _push(pybuild, registry, "search/alpha")
    _push(pybuild, registry, "search/beta")
    listed = json.loads(pybuild("search", "--json", f"{registry.host}/search/al").stdout)
    assert [entry["Name"] for entry in listed] == [f"{registry.host}/search/alpha"]
    table = pybuild("search", f"{registry.host}/search").stdout
    assert "search/alpha" in table and "search/beta" in table
    bad = pybuild("search", "nothing-here", check=False)
    assert bad.returncode == 125 and "REGISTRY/TERM" in bad.stderr

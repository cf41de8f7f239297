"""``bud --platform a,b --manifest NAME``: one image per platform, collected in a list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_fixtures import Registry, skopeo

from builder.platform import Platform, emulation_registered, host_platform, needs_emulation
from tests.build_registry.helpers import context, image, runner

MULTI = "FROM {base}\nARG TARGETARCH TARGETPLATFORM\nCOPY app /app\n" \
        "LABEL arch=$TARGETARCH platform=$TARGETPLATFORM\n"
PLATFORMS = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def _entries(pybuild, name: str) -> dict[str, str]:
    """platform -> manifest digest of the list ``name``, read with ``manifest inspect``."""
    listing = json.loads(pybuild("manifest", "inspect", name).stdout)
    return {f"{e['platform']['os']}/{e['platform']['architecture']}": e["digest"]
            for e in listing["manifests"]}


def _check_images(pybuild, entries: dict[str, str]) -> dict[str, object]:
    records = {}
    for platform, digest in entries.items():
        record = image(pybuild, digest)
        labels = record.config.config.labels
        assert record.config.architecture == PLATFORMS[platform]
        assert (labels["arch"], labels["platform"]) == (PLATFORMS[platform], platform)
        records[platform] = record
    return records


def test_multi_platform_build_into_a_list(registry: Registry, tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", MULTI.format(base="scratch"), {"app": "x"})
    res = pybuild("bud", "--platform", "linux/amd64,linux/arm64", "--manifest", "multi", ctx)
    assert "Building for linux/arm64" in res.stdout
    entries = _entries(pybuild, "multi")
    assert set(entries) == set(PLATFORMS)
    _check_images(pybuild, entries)
    assert res.stdout.split()[-1] == _list_digest(pybuild, "multi").removeprefix("sha256:")
    iid = tmp_path / "iid"  # a rebuild (cached) replaces the entries, adds none
    pybuild("bud", "-q", "--platform", "linux/amd64,linux/arm64", "--manifest", "multi",
            "--iidfile", iid, ctx)
    assert iid.read_text() == _list_digest(pybuild, "multi")
    assert _entries(pybuild, "multi") == entries

    # pushed as a list, then used as a multi-platform base: each build takes its own image
    dest = f"{registry.host}/platforms/base:1"
    pybuild("bud", "--platform", "linux/amd64,linux/arm64", "--manifest", dest, "--push", ctx)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}")
    assert raw.returncode == 0, raw.stderr
    assert {m["platform"]["architecture"] for m in json.loads(raw.stdout)["manifests"]} == \
        set(PLATFORMS.values())
    fresh = runner(tmp_path, "fresh")
    derived = context(tmp_path / "derived", f"FROM {dest}\nCOPY more /more\n", {"more": "y"})
    fresh("bud", "--platform", "linux/arm64,linux/amd64", "--manifest", "derived", derived)
    records = _check_images(fresh, _entries(fresh, "derived"))
    assert all(len(r.manifest.layers) == 2 for r in records.values())
    # newer: the registry's amd64 entry of the index is the image here, so no pull
    res = fresh("bud", "--pull=newer", "--platform", "linux/amd64", "-t", "d", derived)
    assert "Resolving" not in res.stdout


def _list_digest(pybuild, name: str) -> str:
    from builder.store import Store
    from builder.store.manifests import find_manifest_list

    return find_manifest_list(Store(pybuild.root), name).digest


def test_single_platform_with_manifest(tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", MULTI.format(base="scratch"), {"app": "x"})
    res = pybuild("bud", "-q", "--platform", "linux/arm64", "--manifest", "one", "-t", "one-img",
                  ctx)
    record = image(pybuild, "one-img")
    assert res.stdout.strip() == record.id.removeprefix("sha256:")
    assert _entries(pybuild, "one") == {"linux/arm64": record.manifest_digest}


@pytest.mark.parametrize("flags, message", [
    (["--platform", "linux/amd64,linux/arm64"], "name a manifest list with --manifest"),
    (["--platform", "linux/amd64,linux/arm64", "--manifest", "m", "-t", "x"],
     "the images cannot share a tag"),
    (["--platform", "linux/amd64,,linux/arm64", "--manifest", "m"], "empty platform"),
    (["--platform", "linux/arm64,linux/arm64", "--manifest", "m"], "a platform is listed twice"),
    (["--all-platforms"], "--all-platforms: the build uses no base image but scratch"),
])
def test_platform_usage_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    pybuild = runner(tmp_path, "store")
    res = pybuild("bud", *flags, context(tmp_path / "app", "FROM scratch\n"), check=False)
    assert res.returncode != 0 and message in res.stderr


def test_foreign_run_without_emulation_fails_clearly(tmp_path: Path) -> None:
    foreign = "linux/arm64" if host_platform().architecture != "arm64" else "linux/amd64"
    machine = "aarch64" if foreign == "linux/arm64" else "x86_64"
    if emulation_registered(machine):
        pytest.skip(f"binfmt_misc emulation for {machine} is registered here")
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", "FROM scratch\nCOPY app /app\nRUN true\n", {"app": "x"})
    res = pybuild("bud", "--platform", f"{host_platform().os}/{host_platform().architecture},"
                  f"{foreign}", "--manifest", "m", ctx, check=False)
    assert res.returncode != 0
    assert f"RUN for {foreign} needs emulation: no binfmt_misc handler for {machine} " \
           "is registered" in res.stderr
    assert "Containerfile:3" in res.stderr


@pytest.mark.parametrize("files, machine, expected", [
    ({"qemu-aarch64": "enabled\ninterpreter /usr/bin/qemu-aarch64-static\n"}, "aarch64", True),
    ({"qemu-aarch64": "disabled\ninterpreter /usr/bin/qemu-aarch64-static\n"}, "aarch64", False),
    ({"arm64-emu": "enabled\ninterpreter /usr/libexec/qemu-binfmt/qemu-aarch64\n"},
     "aarch64", True),
    ({"qemu-arm": "enabled\ninterpreter /usr/bin/qemu-arm-static\n"}, "aarch64", False),
    ({"status": "enabled\n", "register": ""}, "aarch64", False),
    ({}, "s390x", False),
])
def test_emulation_registered(tmp_path: Path, files: dict[str, str], machine: str,
                              expected: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert emulation_registered(machine, tmp_path) is expected
    assert emulation_registered(machine, tmp_path / "missing") is False


@pytest.mark.parametrize("target, host, expected", [
    (Platform("linux", "amd64"), Platform("linux", "amd64"), False),
    (Platform("linux", "386"), Platform("linux", "amd64"), False),
    (Platform("linux", "arm", "v7"), Platform("linux", "arm64"), False),
    (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), False),
    (Platform("linux", "arm64"), Platform("linux", "amd64"), True),
    (Platform("windows", "amd64"), Platform("linux", "amd64"), True),
])
def test_needs_emulation(target: Platform, host: Platform, expected: bool) -> None:
    assert needs_emulation(target, host) is expected

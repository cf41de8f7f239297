"""pybuild against a real registry, checked with skopeo: push, pull, indexes, formats, mounts."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
from registry_fixtures import (
    Registry,
    layer_tar,
    make_oci_dir,
    seed_store,
    sha256,
    skopeo,
)

from builder.errors import RegistryNotFound
from builder.image.layout import Layout
from builder.reference import parse_reference
from builder.registry import client as client_module
from builder.registry.client import RegistryClient, RegistryOptions, fetch_image, send_image

pytestmark = pytest.mark.interop

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


def layers(seed: str, count: int = 2) -> list[bytes]:
    return [layer_tar({f"{seed}/{i}": os.urandom(2000) + seed.encode()}) for i in range(count)]


def test_push_is_readable_by_skopeo(pybuild, registry: Registry, tmp_path: Path) -> None:
    manifest, config = seed_store(pybuild.root, "localhost/app:1", layers("push"))
    dest = f"{registry.host}/roundtrip/push:1"
    digestfile = tmp_path / "digest"
    res = pybuild("push", "--digestfile", digestfile, "app:1", dest)
    assert res.stdout.strip() == sha256(manifest) == digestfile.read_text()
    assert "Writing manifest to image destination" in res.stderr
    inspect = skopeo("inspect", "--tls-verify=false", f"docker://{dest}")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Digest"] == sha256(manifest)
    copy = skopeo("copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{tmp_path/'out'}:x")
    assert copy.returncode == 0, copy.stderr
    assert Layout(tmp_path / "out").has_blob(sha256(config))
    # a second push finds every blob in place
    again = pybuild("push", "app:1", f"docker://{dest}")
    assert again.stderr.count("skipped: already exists") == 3


def test_pull_of_skopeo_push_gives_same_id(pybuild, registry: Registry, tmp_path: Path) -> None:
    [(manifest, config)] = make_oci_dir(tmp_path / "oci", "v1", [(HOST_ARCH, layers("pull", 3))])
    dest = f"{registry.host}/roundtrip/pull:1"
    copy = skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path/'oci'}:v1", f"docker://{dest}")
    assert copy.returncode == 0, copy.stderr
    res = pybuild("pull", "-q", dest)
    assert res.stdout.strip() == sha256(config)[7:]
    by_digest = pybuild("pull", "-q", f"{registry.host}/roundtrip/pull@{sha256(manifest)}")
    assert by_digest.stdout == res.stdout
    from builder.store import Store

    record = Store(pybuild.root).lookup(dest)
    assert record.manifest_digest == sha256(manifest)
    assert f"{registry.host}/roundtrip/pull:1" in record.names


def test_pull_chooses_platform_from_index(pybuild, registry: Registry, tmp_path: Path) -> None:
    made = make_oci_dir(tmp_path / "oci", "multi",
                        [(OTHER_ARCH, layers("other", 1)), (HOST_ARCH, layers("host", 1))])
    dest = f"{registry.host}/roundtrip/multi:1"
    copy = skopeo("copy", "--all", "--dest-tls-verify=false",
                  f"oci:{tmp_path/'oci'}:multi", f"docker://{dest}")
    assert copy.returncode == 0, copy.stderr
    assert pybuild("pull", "-q", dest).stdout.strip() == sha256(made[1][1])[7:]
    other = pybuild("pull", "-q", "--platform", f"linux/{OTHER_ARCH}", dest)
    assert other.stdout.strip() == sha256(made[0][1])[7:]
    missing = pybuild("pull", "--platform", "linux/s390x", dest, check=False)
    assert missing.returncode == 125
    assert "not in the index" in missing.stderr and f"linux/{OTHER_ARCH}" in missing.stderr


def test_push_docker_format(pybuild, registry: Registry) -> None:
    seed_store(pybuild.root, "localhost/app:d", layers("docker", 1))
    dest = f"{registry.host}/roundtrip/docker:1"
    pybuild("push", "-q", "--format", "docker", "app:d", dest)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}")
    manifest = json.loads(raw.stdout)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {x["mediaType"] for x in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"}


def test_cross_repository_mount(pybuild, registry: Registry) -> None:
    seed_store(pybuild.root, "localhost/app:m", layers("mount"))
    pybuild("push", "app:m", f"{registry.host}/roundtrip/mount-a:1")
    res = pybuild("push", "app:m", f"{registry.host}/roundtrip/mount-b:1")
    assert res.stderr.count("mounted from roundtrip/mount-a") == 3


def test_missing_image_names_registry_and_status(pybuild, registry: Registry) -> None:
    res = pybuild("pull", f"{registry.host}/roundtrip/nothing:1", check=False)
    assert res.returncode == 125
    assert f"pulling {registry.host}/roundtrip/nothing:1: manifest unknown" in res.stderr
    assert "(HTTP 404)" in res.stderr


def test_chunked_upload_and_parallel_pull(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "CHUNK_THRESHOLD", 10_000)
    monkeypatch.setattr(client_module, "CHUNK_SIZE", 7_000)
    source = Layout(tmp_path / "src")
    from registry_fixtures import image_blobs

    big = [layer_tar({"big": os.urandom(50_000)}, level=0) for _ in range(4)]
    manifest, _ = image_blobs(source, big)
    client = RegistryClient(registry.host, RegistryOptions())
    ref = parse_reference(f"{registry.host}/roundtrip/chunked:1")
    assert send_image(client, ref, source, manifest) == sha256(manifest)
    result = fetch_image(client, ref, Layout(tmp_path / "dest"))
    assert result.manifest == manifest
    for layer in big:
        assert Layout(tmp_path / "dest").read_blob(sha256(layer)) == layer
    with pytest.raises(RegistryNotFound):
        client.get_manifest("roundtrip/chunked", "2")


def test_registries_conf_search_mirror_and_block(pybuild, registry: Registry, tmp_path: Path
                                                 ) -> None:
    [(_, config)] = make_oci_dir(tmp_path / "oci", "v1", [(HOST_ARCH, layers("conf", 1))])
    copy = skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path/'oci'}:v1",
                  f"docker://{registry.host}/conf/app:1")
    assert copy.returncode == 0, copy.stderr
    conf = tmp_path / "registries.conf"
    conf.write_text(f"""
unqualified-search-registries = ["{registry.host}"]
[[registry]]
location = "127.0.0.1:1"
[[registry.mirror]]
location = "{registry.host}"
[[registry]]
location = "blocked.invalid"
blocked = true
""")
    image_id = sha256(config)[7:]
    assert pybuild("pull", "-q", "--registries-conf", conf, "conf/app:1").stdout.strip() == image_id
    via_mirror = pybuild("pull", "-q", "--registries-conf", conf, "127.0.0.1:1/conf/app:1")
    assert via_mirror.stdout.strip() == image_id
    blocked = pybuild("pull", "--registries-conf", conf, "blocked.invalid/x:1", check=False)
    assert "registry blocked.invalid is blocked in registries.conf" in blocked.stderr


def test_push_to_oci_dir_and_pull_back(pybuild, tmp_path: Path) -> None:
    manifest, config = seed_store(pybuild.root, "localhost/app:o", layers("oci", 1))
    pybuild("push", "app:o", f"oci:{tmp_path/'out'}:o")
    assert Layout(tmp_path / "out").has_blob(sha256(config))
    other = type(pybuild)(tmp_path / "other-store")
    assert other("pull", f"oci:{tmp_path/'out'}:o").stdout.strip() == sha256(config)[7:]


def test_inspect_remote(registry: Registry, tmp_path: Path) -> None:
    from registry_fixtures import image_blobs

    from builder.registry.client import inspect_remote

    source = Layout(tmp_path / "src")
    manifest, _ = image_blobs(source, layers("inspect", 1))
    target = f"{registry.host}/roundtrip/inspect:7"
    send_image(RegistryClient(registry.host, RegistryOptions()), parse_reference(target),
               source, manifest)
    assert inspect_remote(target, RegistryOptions(), raw=True) == manifest
    info = inspect_remote(f"docker://{target}", RegistryOptions())
    assert isinstance(info, dict)
    assert info["Digest"] == sha256(manifest) and info["RepoTags"] == ["7"]
    assert info["Labels"] == {"test": "test"}

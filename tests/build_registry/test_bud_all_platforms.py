"""``bud --all-platforms --manifest NAME``: one image per platform every base image lists.

The base is a real manifest list made locally: two busybox-based images built with
different ``--platform`` into a list, pushed to the registry on 127.0.0.1 and copied
from there into an OCI layout by skopeo. As Buildah's ``platformsForBaseImages``:
every base must be a list, and the platforms built are those all the lists share.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from registry_fixtures import Registry

from tests.build.conftest import Buildah
from tests.build_registry.helpers import context, image
from tests.conftest import Pybuild

pytestmark = pytest.mark.sandbox

BASE = "FROM localhost/busybox\nARG TARGETARCH\nLABEL base-arch=$TARGETARCH\n"
APP = "FROM {base}\nARG TARGETPLATFORM\nLABEL built-for=$TARGETPLATFORM\nCOPY app /app\n"


def _base_list(pybuild: Pybuild, tmp_path: Path, registry: Registry, name: str,
               platforms: str) -> str:
    """A list of busybox-based images for ``platforms``, pushed as HOST/NAME:multi."""
    pybuild("bud", "-q", "--platform", platforms, "--manifest", name,
            context(tmp_path / name, BASE))
    dest = f"{registry.host}/{name}:multi"
    pybuild("manifest", "push", "--all", "--tls-verify=false", name, f"docker://{dest}")
    return dest


def _entries(pybuild: Pybuild, name: str) -> dict[str, str]:
    listing = json.loads(pybuild("manifest", "inspect", name).stdout)
    return {f"{e['platform']['os']}/{e['platform']['architecture']}": e["digest"]
            for e in listing["manifests"]}


def _check(pybuild: Pybuild, name: str, expected: set[str]) -> None:
    entries = _entries(pybuild, name)
    assert set(entries) == expected
    for platform, digest in entries.items():
        record = image(pybuild, digest)
        labels = record.config.config.labels
        arch = platform.split("/")[1]
        assert record.config.architecture == arch
        assert (labels["built-for"], labels["base-arch"]) == (platform, arch)


def test_all_platforms_from_a_registry_list(registry: Registry, tmp_path: Path,
                                            with_busybox: Pybuild) -> None:
    base = _base_list(with_busybox, tmp_path, registry, "base", "linux/amd64,linux/arm64")
    app = context(tmp_path / "app", APP.format(base=base), {"app": "x"})
    res = with_busybox("bud", "--all-platforms", "--manifest", "out", "--tls-verify=false",
                       app)
    assert "Building for linux/arm64" in res.stdout
    _check(with_busybox, "out", {"linux/amd64", "linux/arm64"})


def test_all_platforms_from_an_oci_layout(registry: Registry, tmp_path: Path,
                                          with_busybox: Pybuild) -> None:
    base = _base_list(with_busybox, tmp_path, registry, "base", "linux/amd64,linux/arm64")
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", f"docker://{base}",
                    f"oci:{layout}:multi"], check=True, capture_output=True)
    app = context(tmp_path / "app", APP.format(base=f"oci:{layout}:multi"), {"app": "x"})
    with_busybox("bud", "-q", "--all-platforms", "--manifest", "out", app)
    _check(with_busybox, "out", {"linux/amd64", "linux/arm64"})


def test_all_platforms_takes_what_every_base_lists(registry: Registry, tmp_path: Path,
                                                   with_busybox: Pybuild) -> None:
    first = _base_list(with_busybox, tmp_path, registry, "one", "linux/amd64,linux/arm64")
    second = _base_list(with_busybox, tmp_path, registry, "two", "linux/arm64,linux/s390x")
    app = context(tmp_path / "app", f"FROM {second} AS other\n" + APP.format(base=first)
                  + "COPY --from=other /etc/passwd /other-passwd\n", {"app": "x"})
    with_busybox("bud", "-q", "--all-platforms", "--manifest", "out", "--tls-verify=false",
                 app)
    _check(with_busybox, "out", {"linux/arm64"})


def test_all_platforms_needs_lists(registry: Registry, tmp_path: Path,
                                   with_busybox: Pybuild) -> None:
    layout = tmp_path / "single"
    with_busybox("push", "localhost/busybox", f"oci:{layout}:one")
    app = context(tmp_path / "app", APP.format(base=f"oci:{layout}:one"), {"app": "x"})
    res = with_busybox("bud", "--all-platforms", "--manifest", "out", app, check=False)
    assert res.returncode == 125
    assert f"base image 'oci:{layout}:one' is not a manifest list" in res.stderr


@pytest.mark.interop
def test_all_platforms_matches_buildah(registry: Registry, tmp_path: Path,
                                       with_busybox: Pybuild, buildah: Buildah) -> None:
    """Buildah 1.28 builds the same platforms from the same lists, each image with the
    same config (labels from the matching base included)."""
    first = _base_list(with_busybox, tmp_path, registry, "one", "linux/amd64,linux/arm64")
    second = _base_list(with_busybox, tmp_path, registry, "two",
                        "linux/arm64,linux/amd64,linux/s390x")
    app = context(tmp_path / "app", f"FROM {second} AS other\n" + APP.format(base=first),
                  {"app": "x"})
    with_busybox("bud", "-q", "--all-platforms", "--manifest", "out", "--tls-verify=false",
                 app)
    ours = _entries(with_busybox, "out")
    buildah.run("bud", "-q", "--all-platforms", "--manifest", "out", "--tls-verify=false",
                str(app))
    layout = tmp_path / "buildah-out"
    buildah.run("manifest", "push", "--all", "out", f"oci:{layout}:out")
    index = json.loads((layout / "index.json").read_text())
    top = json.loads(_blob(layout, index["manifests"][0]["digest"]))
    theirs = {f"{e['platform']['os']}/{e['platform']['architecture']}": e["digest"]
              for e in top["manifests"]}
    assert set(ours) == set(theirs) == {"linux/amd64", "linux/arm64"}
    for platform, digest in theirs.items():
        config = json.loads(_blob(layout, json.loads(_blob(layout, digest))["config"]["digest"]))
        identity = ("io.buildah.version", "io.pybuild.version")
        their_labels = {k: v for k, v in config["config"]["Labels"].items()
                        if k not in identity}
        record = image(with_busybox, ours[platform])
        our_labels = {k: v for k, v in (record.config.config.labels or {}).items()
                      if k not in identity}
        assert our_labels == their_labels
        assert record.config.architecture == config["architecture"]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

"""Faults injected by a proxy in front of the real registry: retries, clear errors, no bad blobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_fixtures import FaultProxy, image_blobs, layer_tar, sha256

from builder.errors import DigestMismatch, RegistryError
from builder.image.layout import Layout
from builder.reference import Reference
from builder.registry.client import RegistryClient, RegistryOptions, fetch_image, send_image

FAST = RegistryOptions(retry=3, retry_delay=0.01)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Layout, bytes, list[bytes]]:
    layout = Layout(tmp_path / "src")
    layers = [layer_tar({f"f{i}": os.urandom(40_000)}, level=0) for i in range(2)]
    manifest, _ = image_blobs(layout, layers)
    return layout, manifest, layers


def ref(proxy: FaultProxy, name: str) -> Reference:
    return Reference(proxy.host, f"faults/{name}", "1")


def test_push_retries_server_errors(fault_proxy: FaultProxy, image) -> None:
    layout, manifest, _ = image
    fault_proxy.inject("500", "POST", r"/blobs/uploads/", times=2)
    fault_proxy.inject("500", "PUT", r"/manifests/", times=1)
    client = RegistryClient(fault_proxy.host, FAST)
    assert send_image(client, ref(fault_proxy, "push500"), layout, manifest) == sha256(manifest)
    assert len(fault_proxy.hits) == 3


def test_push_gives_up_with_clear_error(fault_proxy: FaultProxy, image) -> None:
    layout, manifest, _ = image
    fault_proxy.inject("500", "PUT", r"/manifests/", times=100)
    client = RegistryClient(fault_proxy.host, FAST)
    with pytest.raises(RegistryError) as caught:
        send_image(client, ref(fault_proxy, "giveup"), layout, manifest)
    assert caught.value.status == 500
    assert "unknown: injected failure (HTTP 500)" in str(caught.value)
    assert len(fault_proxy.hits) == 4  # the first try and three retries


def test_pull_survives_reset_and_flipped_byte(fault_proxy: FaultProxy, image, tmp_path: Path
                                              ) -> None:
    layout, manifest, layers = image
    client = RegistryClient(fault_proxy.host, FAST)
    target = ref(fault_proxy, "pull")
    send_image(client, target, layout, manifest)
    fault_proxy.inject("reset", "GET", sha256(layers[0]))
    fault_proxy.inject("flip", "GET", sha256(layers[1]))
    dest = Layout(tmp_path / "dest")
    assert fetch_image(client, target, dest).manifest == manifest
    assert len(fault_proxy.hits) == 2
    assert all(dest.read_blob(sha256(layer)) == layer for layer in layers)


def test_corrupt_blob_never_lands(fault_proxy: FaultProxy, image, tmp_path: Path) -> None:
    layout, manifest, layers = image
    client = RegistryClient(fault_proxy.host, FAST)
    target = ref(fault_proxy, "corrupt")
    send_image(client, target, layout, manifest)
    fault_proxy.inject("flip", "GET", sha256(layers[0]), times=100)
    dest = Layout(tmp_path / "dest")
    with pytest.raises(DigestMismatch):
        fetch_image(client, target, dest)
    assert not dest.has_blob(sha256(layers[0]))
    assert not [p for p in dest.blobs.iterdir() if p.name.startswith(".")]  # no temp files


def test_pull_reports_dropped_connections(fault_proxy: FaultProxy, image, tmp_path: Path,
                                          pybuild) -> None:
    layout, manifest, layers = image
    send_image(RegistryClient(fault_proxy.host, FAST), ref(fault_proxy, "drop"), layout, manifest)
    fault_proxy.inject("reset", "GET", sha256(layers[1]), times=100)
    res = pybuild("pull", "--retry", "1", "--retry-delay", "0.01",
                  f"{fault_proxy.host}/faults/drop:1", check=False)
    assert res.returncode == 125
    assert f"Error: pulling {fault_proxy.host}/faults/drop:1: reading blob from" in res.stderr
    assert "Traceback" not in res.stderr

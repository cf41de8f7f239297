"""Spec types: JSON round trips, omitted empty fields, OCI vs Docker config fields."""

from __future__ import annotations

import json

import pytest

from builder.errors import DigestMismatch, ImageError
from builder.image.digest import HashingReader, VerifyingReader, digest_hex, sha256_digest
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
)
from builder.platform import Platform

D = "sha256:" + "a" * 64


def full_config() -> ImageConfig:
    return ImageConfig(
        architecture="amd64", os="linux", created="2024-01-01T00:00:00Z", author="me",
        config=ContainerConfig(
            user="1000", exposed_ports={"80/tcp": {}}, env=["A=1"], entrypoint=["/e"],
            cmd=["c"], volumes={"/v": {}}, working_dir="/w", labels={"k": "v"},
            stop_signal="SIGTERM", shell=["/bin/sh", "-c"],
            healthcheck={"Test": ["CMD", "true"], "Interval": 1000}, on_build=["RUN x"],
        ),
        diff_ids=[D], history=[History(created_by="x"), History(empty_layer=True)],
    )


def test_config_round_trip_docker() -> None:
    cfg = full_config()
    assert ImageConfig.from_json(cfg.to_json("docker")) == cfg


def test_oci_config_omits_docker_only_fields() -> None:
    cfg = full_config()
    body = json.loads(cfg.to_json("oci"))
    assert {"Shell", "Healthcheck", "OnBuild"}.isdisjoint(body["config"])
    assert body["config"]["Cmd"] == ["c"]
    assert cfg.config.docker_only_fields() == ["Shell", "Healthcheck", "OnBuild"]
    assert body["rootfs"] == {"type": "layers", "diff_ids": [D]}


def test_serialization_is_stable_and_omits_empty() -> None:
    cfg = ImageConfig(architecture="amd64", os="linux")
    assert cfg.to_json() == cfg.to_json()
    assert json.loads(cfg.to_json()) == {
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }


def test_manifest_and_index_round_trip() -> None:
    m = Manifest(config=Descriptor("application/vnd.oci.image.config.v1+json", D, 3),
                 layers=[Descriptor(MEDIA_OCI_LAYER_GZIP, D, 5, annotations={"a": "b"})],
                 annotations={"x": "y"})
    assert Manifest.from_json(m.to_json()) == m
    assert json.loads(m.to_json())["schemaVersion"] == 2
    idx = Index([Descriptor(MEDIA_OCI_MANIFEST, D, 9, annotations={ANNOTATION_REF_NAME: "t"},
                            platform=Platform("linux", "arm64", variant="v8"))])
    assert Index.from_json(idx.to_json()) == idx
    assert json.loads(idx.to_json())["manifests"][0]["platform"]["variant"] == "v8"


@pytest.mark.parametrize("bad", [b"not json", b"[]", b'{"layers": []}'])
def test_bad_manifest(bad: bytes) -> None:
    with pytest.raises(ImageError):
        Manifest.from_json(bad)


def test_digests_and_readers(tmp_path) -> None:
    data = b"hello"
    d = sha256_digest(data)
    assert digest_hex(d) == d[7:]
    with pytest.raises(ImageError):
        digest_hex("md5:abc")
    p = tmp_path / "f"
    p.write_bytes(data)
    with HashingReader(open(p, "rb")) as r:
        assert r.read() == data and r.digest == d and r.size == 5
    with VerifyingReader(open(p, "rb"), d, 5) as r:
        assert r.read(2) + r.read() == data
    with pytest.raises(DigestMismatch):
        with VerifyingReader(open(p, "rb"), D) as r:
            while r.read(2):
                pass

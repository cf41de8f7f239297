"""Build secrets reach the RUN that mounts them and nothing else: no blob of the store
(layers decompressed), no history entry, no other store file, no build output."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
from pathlib import Path

import pytest
import zstandard

from tests.conftest import Pybuild

pytestmark = [pytest.mark.sandbox, pytest.mark.rootless]


def _contents(path: Path) -> bytes:
    """A store file's bytes, decompressed when it is a gzip or zstd layer."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _needles(secret: bytes) -> list[bytes]:
    return [secret, base64.b64encode(secret), secret.hex().encode()]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_secret_leaves_no_trace(compression: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    file_secret = secrets.token_hex(24).encode()
    env_secret = secrets.token_hex(24).encode()
    (tmp_path / "tok").write_bytes(file_secret)
    file_sum = hashlib.sha256(file_secret).hexdigest()
    env_sum = hashlib.sha256(env_secret).hexdigest()
    (tmp_path / "Containerfile").write_text(
        "FROM localhost/busybox\n"
        "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null "
        f"&& echo '{file_sum}  /run/secrets/tok' | sha256sum -c -s\n"
        "RUN --mount=type=secret,id=tok,env=TOKEN "
        f"test \"$(printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1)\" = {file_sum}\n"
        "RUN --mount=type=secret,id=fromenv,target=/etc/app-token "
        f"echo '{env_sum}  /etc/app-token' | sha256sum -c -s && echo done > /done\n"
        "RUN --mount=type=secret,id=fromenv,env=FROMENV,required=true "
        "echo \"${#FROMENV} characters\"\n")
    with_busybox.env["HOST_TOKEN"] = env_secret.decode()
    res = with_busybox("bud", "--compression", compression, "-t", "secret:latest",
                       "--secret", f"id=tok,src={tmp_path / 'tok'}",
                       "--secret", "id=fromenv,env=HOST_TOKEN", tmp_path)
    assert "48 characters" in res.stdout  # the env= secret was there
    files = [p for p in with_busybox.root.rglob("*") if p.is_file() and not p.is_symlink()]
    blobs = [p for p in files if "blobs" in p.parts]
    assert len(blobs) >= 6
    for secret in (file_secret, env_secret):
        for needle in _needles(secret):
            assert needle not in res.output.encode()
            for path in files:
                assert needle not in _contents(path), path
    manifest = _image_config(with_busybox.root, "localhost/secret:latest")
    history = json.dumps(manifest["history"])
    for secret in (file_secret, env_secret):
        assert secret.decode() not in history
    assert "/run/secrets" not in _layer_listing(with_busybox.root, "localhost/secret:latest")
    assert "etc/app-token" not in _layer_listing(with_busybox.root, "localhost/secret:latest")


def _image_config(root: Path, ref: str) -> dict:
    from tests.build.imagetree import _blob, _manifest

    return json.loads(_blob(root, _manifest(root, ref)["config"]["digest"]))


def _layer_listing(root: Path, ref: str) -> str:
    from tests.interop.layers import read_image

    image = read_image(root, ref)
    return "\n".join(path for _, layer in image.steps if layer for path in layer.entries)

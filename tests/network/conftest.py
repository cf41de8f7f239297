"""Fixtures for network tests: a listener on the host's loopback, the layers of an image,
and the user-mode network processes a test started."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

NETWORK_TOOLS = ("slirp4netns", "pasta", "pasta.avx2", "passt", "passt.avx2")  # pasta re-execs


class Listener:
    """A TCP server on 127.0.0.1 that records what connections send."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(100))
                except OSError:
                    self.received.append(b"")

    def wait(self, seconds: float = 3) -> list[bytes]:
        deadline = time.monotonic() + seconds
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.sock.close()


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hex_ = digest.partition(":")
    return (layout / "blobs" / algorithm / hex_).read_bytes()


def image_parts(layout: Path, ref: str) -> tuple[dict[str, Any], list[bytes]]:
    """An image's config and its layers as uncompressed tar bytes."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
            manifest = json.loads(_blob(layout, desc["digest"]))
            break
    else:
        raise KeyError(ref)
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    layers = []
    for layer in manifest["layers"]:
        data = _blob(layout, layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        layers.append(data)
    return config, layers


def layer_names(layer: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return [m.name.lstrip("./") for m in tar.getmembers()]


def network_processes(token: str) -> list[int]:
    """slirp4netns and pasta processes whose environment holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() not in NETWORK_TOOLS:
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if token.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found

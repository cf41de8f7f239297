"""Layer tars: determinism, entry kinds, and readers (tar, Python tarfile, gzip)."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from builder.errors import ImageError, LayerError
from builder.image.compress import CHUNK, ParallelGzip
from builder.image.layer import LayerEntry, tree_entries, write_layer
from builder.image.layout import Layout
from builder.image.spec import (
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
)

LONG = "d" * 60 + "/" + "f" * 120


def make_tree(root: Path) -> Path:
    (root / "dir/empty").mkdir(parents=True)
    (root / "dir/file").write_text("content\n")
    os.link(root / "dir/file", root / "hardlink")
    (root / "link").symlink_to("dir/file")
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "suid", 0o4755)
    (root / LONG).parent.mkdir()
    (root / LONG).write_text("long")
    (root / "xattr").write_text("x")
    os.setxattr(root / "xattr", "user.comment", b"hello")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))
    (root / "big").write_bytes(random.Random(1).randbytes(3 * CHUNK + 17))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def members(layout: Layout, digest: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layout.blob_path(digest)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_entries_and_kinds(tree: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out")
    entries = tree_entries(tree) + [LayerEntry("dir/.wh.gone", None),
                                    LayerEntry("dir/empty/.wh..wh..opq", None)]
    result = write_layer(entries, layout)
    assert result.media_type == MEDIA_OCI_LAYER_GZIP
    m = members(layout, result.digest)
    assert list(m) == sorted(m)
    assert m["dir"].isdir() and m["dir/empty"].isdir()
    assert m["dir/file"].isfile() and m["hardlink"].islnk() and m["hardlink"].linkname == "dir/file"
    assert m["link"].issym() and m["link"].linkname == "dir/file"
    assert m["suid"].mode == 0o4755
    assert m[LONG].size == 4 and m[LONG].pax_headers["path"] == LONG
    assert m["xattr"].pax_headers["SCHILY.xattr.user.comment"] == "hello"
    assert m["fifo"].isfifo()
    assert m["null"].ischr() and (m["null"].devmajor, m["null"].devminor) == (1, 3)
    assert m["dir/.wh.gone"].isfile() and m["dir/empty/.wh..wh..opq"].size == 0
    assert all(x.uname == "" and x.gname == "" for x in m.values())
    with tarfile.open(layout.blob_path(result.digest)) as tar:
        member = tar.extractfile("big")
        assert member is not None and member.read() == (tree / "big").read_bytes()
    listing = subprocess.run(["tar", "-tvzf", layout.blob_path(result.digest)],
                             capture_output=True, text=True, check=True).stdout
    assert "hardlink link to dir/file" in listing and LONG in listing


def test_diff_id_is_uncompressed_digest(tree: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out")
    results = {c: write_layer(tree_entries(tree), layout, compression=c)
               for c in ("gzip", "zstd", "none")}
    assert len({r.diff_id for r in results.values()}) == 1
    plain = results["none"]
    assert plain.digest == plain.diff_id and plain.media_type == MEDIA_OCI_LAYER
    assert results["zstd"].media_type == MEDIA_OCI_LAYER_ZSTD
    raw = layout.read_blob(plain.digest)
    assert gzip.decompress(layout.read_blob(results["gzip"].digest)) == raw
    with zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(layout.read_blob(results["zstd"].digest))) as r:
        assert r.read() == raw
    subprocess.run(["gzip", "-t", layout.blob_path(results["gzip"].digest)], check=True)


def test_deterministic_and_clamped(tree: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out")
    first = write_layer(tree_entries(tree), layout, timestamp=1_000_000)
    assert write_layer(tree_entries(tree), layout, timestamp=1_000_000) == first
    for path in [tree / "dir/file", tree / "suid", tree / "dir"]:
        os.utime(path, (2_000_000_000, 2_000_000_000))
    assert write_layer(tree_entries(tree), layout, timestamp=1_000_000) == first
    unclamped = write_layer(tree_entries(tree), layout)
    assert unclamped.digest != first.digest
    m = members(layout, first.digest)
    assert max(x.mtime for x in m.values()) <= 1_000_000


def test_docker_format_and_bad_combinations(tree: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out")
    assert write_layer([], layout, format="docker").media_type == MEDIA_DOCKER_LAYER_GZIP
    with pytest.raises(ImageError):
        write_layer([], layout, format="docker", compression="zstd")
    with pytest.raises(ImageError):
        write_layer([], layout, compression="lz4")


@pytest.mark.parametrize("entry", [
    LayerEntry("/abs", Path("/etc/hostname")),
    LayerEntry("a/../b", Path("/etc/hostname")),
    LayerEntry("nowhiteout", None),
])
def test_unsafe_entries(entry: LayerEntry, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "out")
    with pytest.raises(LayerError):
        write_layer([entry], layout)
    assert layout.blob_digests() == []


def test_real_file_named_like_whiteout_refused(tmp_path: Path) -> None:
    (tmp_path / ".wh.x").write_text("")
    with pytest.raises(LayerError):
        write_layer([LayerEntry(".wh.x", tmp_path / ".wh.x")], Layout(tmp_path / "out"))


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5])
@pytest.mark.parametrize("threads", [1, 3])
def test_parallel_gzip(size: int, threads: int, tmp_path: Path) -> None:
    rng = random.Random(size)
    data = bytes(rng.choice(b"abcdefgh ") for _ in range(size // 4)) + rng.randbytes(size - size // 4)
    out = Collect()
    gz = ParallelGzip(out, threads=threads)
    for start in range(0, size, 100_000):
        gz.write(data[start:start + 100_000])
    gz.close()
    assert gzip.decompress(bytes(out.data)) == data
    reference = Collect()
    single = ParallelGzip(reference, threads=1)
    single.write(data)
    single.close()
    assert reference.data == out.data  # same bytes whatever the threads and write sizes
    (tmp_path / "x.gz").write_bytes(out.data)
    subprocess.run(["gzip", "-t", tmp_path / "x.gz"], check=True)

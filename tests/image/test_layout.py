"""Layout: content addressing, verification, atomic blobs and index."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import DigestMismatch
from builder.image.digest import sha256_digest
from builder.image.layout import Layout
from builder.image.spec import MEDIA_OCI_MANIFEST, Descriptor, Index


def test_new_layout_files(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    assert json.loads((tmp_path / "l/oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert layout.read_index() == Index()


def test_put_blob_bytes_stream_and_writer(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    d, n = layout.put_blob(b"abc")
    assert (d, n) == (sha256_digest(b"abc"), 3)
    assert layout.put_blob(io.BytesIO(b"abc")) == (d, 3)
    with layout.blob_writer() as w:
        w.write(b"ab")
        w.write(b"c")
    assert w.digest == d and w.size == 3
    assert layout.read_blob(d) == b"abc" and layout.has_blob(d)
    assert layout.blob_digests() == [d]
    layout.remove_blob(d)
    assert not layout.has_blob(d)


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    with pytest.raises(DigestMismatch):
        layout.put_blob(b"abc", expected=sha256_digest(b"xyz"))
    assert os.listdir(layout.blobs) == []


def test_error_in_writer_leaves_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    with pytest.raises(RuntimeError):
        with layout.blob_writer() as w:
            w.write(b"partial")
            raise RuntimeError("boom")
    assert os.listdir(layout.blobs) == []


def test_killed_writer_leaves_no_visible_blob(tmp_path: Path) -> None:
    """A process killed mid-write leaves at most a hidden temp file, never a blob."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom builder.image.layout import Layout\n"
        f"l = Layout(Path({str(tmp_path)!r}))\n"
        "with l.blob_writer() as w:\n"
        "    w.write(b'x' * 4_000_000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    layout = Layout(tmp_path)
    assert layout.blob_digests() == []
    assert all(n.startswith(".tmp-") for n in os.listdir(layout.blobs))


def test_index_replaced_atomically(tmp_path: Path) -> None:
    """Readers polling index.json while it is rewritten always see a complete index."""
    layout = Layout(tmp_path)
    code = (
        "from pathlib import Path\nfrom builder.image.layout import Layout\n"
        "from builder.image.spec import Index, Descriptor\n"
        f"l = Layout(Path({str(tmp_path)!r}))\n"
        "for i in range(300):\n"
        "    l.write_index(Index([Descriptor('m', 'sha256:' + '0' * 64, i)] * (i % 50)))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    seen = 0
    while proc.poll() is None:
        layout.read_index()  # raises on a torn file
        seen += 1
    assert proc.returncode == 0 and seen > 0
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_write_index(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    idx = Index([Descriptor(MEDIA_OCI_MANIFEST, sha256_digest(b"m"), 1)])
    layout.write_index(idx)
    assert Layout(tmp_path, create=False).read_index() == idx

"""Fuzzing image parsing on a small budget (``bench/fuzz_image.py`` runs >= 10,000
examples per target): the JSON parsers raise nothing but PybuildError, and
``extract_layer`` and ``extract_archive`` (ADD) on random tar streams neither raise
anything else nor touch anything outside their destination."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import LayerError, PybuildError
from builder.rootfs.extract import extract_layer

from .strategies import check_extract, check_parser, check_unpack, documents, layer_streams

FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", ["manifest", "index", "config", "descriptor"])
def test_parsers_raise_only_pybuild_errors(kind: str) -> None:
    @FAST
    @given(documents(kind))
    def fuzz(data: object) -> None:
        check_parser(kind, data)

    fuzz()


def test_extract_layer_on_random_tars() -> None:
    @FAST
    @given(layer_streams(), st.sampled_from(["overlay", "apply"]))
    def fuzz(stream: tuple[bytes, str], whiteouts: str) -> None:
        check_extract(stream[0], stream[1], whiteouts)

    fuzz()


def test_extract_archive_on_random_tars() -> None:
    """ADD's unpacking goes through the same extractor; the same streams, onto a root with
    symlinked parents."""
    @FAST
    @given(layer_streams(), st.sampled_from(["/", "/bin", "/host/sub", "/a"]))
    def fuzz(stream: tuple[bytes, str], dest: str) -> None:
        check_unpack(stream[0], stream[1], dest)

    fuzz()


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _file(name: str, pax: dict[str, str]) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.pax_headers = pax
    return info, b"x"


def _entry(name: str, kind: bytes, link: str = "",
           mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info, b""


@pytest.mark.parametrize(("pax", "message"), [
    ({"mtime": "1e30"}, "bad pax time b'1e30'"), ({"mtime": "nan"}, "bad pax time b'nan'"),
    ({"uid": "99999999999999999999"}, "uid is greater than maximum"),
], ids=["mtime", "nan", "uid"])
def test_out_of_range_pax_numbers_are_layer_errors(tmp_path: Path, pax: dict[str, str],
                                                   message: str) -> None:
    blob = _tar(_file("f", pax))
    with pytest.raises(LayerError, match=message) as refused:
        extract_layer(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar", tmp_path,
                      layer_digest="sha256:" + "0" * 64)
    assert "sha256:" + "0" * 64 in str(refused.value)


def test_directory_metadata_never_lands_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    os.chmod(outside / "victim", 0o700)
    dest = tmp_path / "dest"
    dest.mkdir()
    blob = _tar(_entry("a/victim", tarfile.DIRTYPE, mode=0o777),
                _entry("a", tarfile.SYMTYPE, link=str(outside)))
    try:
        extract_layer(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar", dest,
                      layer_digest="sha256:" + "0" * 64)
    except PybuildError:
        pass
    assert (outside / "victim").stat().st_mode & 0o777 == 0o700

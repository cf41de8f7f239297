"""The extractor's own tar reader: formats it reads and headers it refuses."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from builder.errors import LayerError
from builder.rootfs.extract import extract_layer

TAR = "application/vnd.oci.image.layer.v1.tar"


def extract(dest: Path, raw: bytes, **kw: object) -> None:
    extract_layer(io.BytesIO(raw), TAR, dest, layer_digest="sha256:feed", **kw)


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
           ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, len(data), 1_700_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def archive(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def header(name: bytes, kind: bytes = b"0", size: int | bytes = 0, **fields: bytes) -> bytes:
    """A ustar header; ``size`` and ``fields`` may give raw field bytes (mode, magic...)."""
    layout = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8),
              "size": (124, 12), "mtime": (136, 12), "linkname": (157, 100),
              "magic": (257, 6), "version": (263, 2), "prefix": (345, 155)}
    block = bytearray(512)
    values = {"name": name, "mode": b"0000644\0", "uid": b"0000000\0", "gid": b"0000000\0",
              "size": size if isinstance(size, bytes) else b"%011o\0" % size,
              "mtime": b"%011o\0" % 1_700_000_000, "magic": b"ustar\0", "version": b"00",
              **fields}
    for key, value in values.items():
        start, width = layout[key]
        block[start:start + len(value[:width])] = value[:width]
    block[156:157] = kind
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def body(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def record(key: str, value: str) -> bytes:
    """One pax record, its length counting its own digits."""
    text = f" {key}={value}\n".encode()
    digits = next(n for n in range(1, 8) if len(str(len(text) + n)) == n)
    return str(len(text) + digits).encode() + text


def pax(records: dict[str, str], kind: bytes = b"x") -> bytes:
    data = b"".join(record(key, value) for key, value in records.items())
    return header(b"PaxHeader", kind, len(data)) + body(data)


END = bytes(1024)


def test_gnu_long_names_links_and_base256_numbers(tmp_path: Path) -> None:
    long_dir = "d" * 120
    long_name = f"{long_dir}/{'f' * 150}"
    raw = archive([
        member(long_name, data=b"long", uid=2 ** 22, gid=7, mtime=-1000),
        member("hl", tarfile.LNKTYPE, linkname=long_name),
        member("sl", tarfile.SYMTYPE, linkname="x" * 200),
    ], tarfile.GNU_FORMAT)
    assert b"././@LongLink" in raw and b"\x80" in raw[:4096]  # long names, base-256 uid
    extract(tmp_path, raw)
    st = os.lstat(tmp_path / long_name)
    assert (tmp_path / long_name).read_bytes() == b"long" and st.st_nlink == 2
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (2 ** 22, 7, -1000 * 10 ** 9)
    assert os.readlink(tmp_path / "sl") == "x" * 200


def test_pax_names_numbers_times_and_xattrs(tmp_path: Path) -> None:
    name = "p/" + "é" * 120
    info, data = member(name, data=b"pax", uid=3_000_000, pax_headers={
        "mtime": "1700000000.123456789123", "user.note": "ignored",
        "SCHILY.xattr.user.k": "v", "SCHILY.xattr.user.empty": ""})
    extract(tmp_path, archive([(info, data), member("p/n", tarfile.SYMTYPE, linkname="y" * 300)]))
    st = os.lstat(tmp_path / name)
    assert (tmp_path / name).read_bytes() == b"pax"
    assert (st.st_uid, st.st_mtime_ns) == (3_000_000, 1_700_000_000_123_456_789)
    assert os.readlink(tmp_path / "p/n") == "y" * 300
    assert os.getxattr(tmp_path / name, "user.k") == b"v"
    assert os.getxattr(tmp_path / name, "user.empty") == b""  # not a cancelled record


def test_ustar_prefix_field(tmp_path: Path) -> None:
    name = "a" * 90 + "/" + "b" * 50 + "/file"
    raw = archive([member(name, data=b"x")], tarfile.USTAR_FORMAT)
    assert raw[345:345 + 90] == b"a" * 90
    extract(tmp_path, raw)
    assert (tmp_path / name).read_bytes() == b"x"


def test_global_pax_headers_and_cancelled_records(tmp_path: Path) -> None:
    raw = (pax({"mtime": "1000"}, b"g") + header(b"a") + pax({"mtime": ""}) + header(b"b")
           + pax({"mtime": "2000"}) + header(b"c") + END)
    extract(tmp_path, raw)
    mtimes = [int(os.lstat(tmp_path / n).st_mtime) for n in "abc"]
    assert mtimes == [1000, 1_700_000_000, 2000]


def test_header_spellings(tmp_path: Path) -> None:
    """Space-padded octal, signed checksums, pre-POSIX directories, no end blocks."""
    spaced = header(b"spaced", size=3, mode=b"   644 \0")
    signed = bytearray(header("é".encode() + b"\xff", size=0))
    signed[148:156] = b" " * 8
    total = sum(b - 256 if b > 127 else b for b in signed)
    signed[148:156] = b"%06o\0 " % total
    old_dir = header(b"olddir/", b"\0", magic=b"\0" * 6, version=b"\0\0")
    extract(tmp_path, spaced + body(b"abc") + bytes(signed) + old_dir)  # no end-of-archive
    assert (tmp_path / "spaced").read_bytes() == b"abc"
    assert stat.S_IMODE(os.lstat(tmp_path / "spaced").st_mode) == 0o644
    assert os.path.isfile(tmp_path / "é\udcff")
    assert os.path.isdir(tmp_path / "olddir")


def test_large_files_and_trailing_data_are_hashed(tmp_path: Path) -> None:
    big = os.urandom(3 * (1 << 20) + 17)
    raw = archive([member("big", data=big), member("empty"), member("after", data=b"z")])
    raw += b"trailing junk after the end of the archive"
    extract(tmp_path, raw, diff_id="sha256:" + hashlib.sha256(raw).hexdigest())
    assert (tmp_path / "big").read_bytes() == big
    assert (tmp_path / "empty").read_bytes() == b""
    assert (tmp_path / "after").read_bytes() == b"z"


def test_an_archive_of_zero_blocks_is_empty(tmp_path: Path) -> None:
    extract(tmp_path, END)
    assert os.listdir(tmp_path) == []


REFUSED = {
    "empty stream": (b"", "empty archive"),
    "bad checksum": (header(b"f")[:148] + b"0000000\0" + header(b"f")[156:] + END,
                     "bad header checksum"),
    "garbage": (b"not a tar header" * 64, "bad header checksum"),
    "bad octal": (header(b"f", mode=b"00006x4\0") + END, "bad entry header"),
    "digit 9": (header(b"f", uid=b"0000009\0") + END, "bad entry header"),
    "signed octal": (header(b"f", gid=b"+000001\0") + END, "bad entry header"),
    "negative size": (header(b"f", size=b"\xff" * 12) + END, "negative size"),
    "truncated header": (header(b"f")[:300], "unexpected end of data"),
    "truncated data": (header(b"f", size=1000) + b"x" * 10, "unexpected end of data"),
    "pax data missing": (header(b"PaxHeader", b"x", 100), "unexpected end of data"),
    "pax too large": (header(b"PaxHeader", b"x", (1 << 20) + 1) + END, "extension header of"),
    "pax bad length": (header(b"PaxHeader", b"x", 12) + body(b"99 path=abc\n") + header(b"f")
                       + END, "bad pax record"),
    "pax no equals": (header(b"PaxHeader", b"x", 8) + body(b"8 pathx\n") + header(b"f") + END,
                      "bad pax record"),
    "pax bad number": (pax({"uid": "-1"}) + header(b"f") + END, "bad pax number"),
    "pax float time": (pax({"mtime": "1e30"}) + header(b"f") + END, "bad pax time"),
    "pax then end": (pax({"path": "x"}) + END, "archive ends after an extension header"),
    "global pax then end": (pax({}, b"g") + END, "archive ends after an extension header"),
    "long name then end": (header(b"././@LongLink", b"L", 4) + body(b"abc\0") + END,
                           "archive ends after an extension header"),
    "pax sparse": (pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}) + header(b"f") + END,
                   "sparse files are not supported"),
    "gnu sparse": (header(b"f", b"S") + END, "unsupported entry type"),
    "volume label": (header(b"label", b"V") + END, "unsupported entry type"),
}


@pytest.mark.parametrize("raw,message", REFUSED.values(), ids=REFUSED.keys())
def test_bad_archives_are_refused(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(LayerError, match=message) as err:
        extract(tmp_path, raw)
    assert "sha256:feed" in str(err.value)

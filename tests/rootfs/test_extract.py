"""Safe layer extraction: a table of hostile tars, whiteouts, metadata."""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

import builder
from builder.errors import DigestMismatch, LayerError
from builder.rootfs.extract import extract_layer

from .tarbuild import E, diff_id, gz, make_tar

TAR = "application/vnd.oci.image.layer.v1.tar"
TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TZST = "application/vnd.oci.image.layer.v1.tar+zstd"


def extract(dest: Path, raw: bytes, media_type: str = TAR, **kw: object) -> None:
    extract_layer(io.BytesIO(raw), media_type, dest, layer_digest="sha256:feed", **kw)


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(dest, outside): dest sits next to a directory it must never write to."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "canary").write_text("safe")
    return dest, outside


CAP = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw+ep

HOSTILE = {
    "dotdot": [E("../outside/evil", data=b"x")],
    "dotdot-inner": [E("a/../../outside/evil", data=b"x")],
    "absolute": [E("/tmp/evil", data=b"x")],
    "symlink-parent": [E("link", "symlink", link="../outside"), E("link/evil", data=b"x")],
    "symlink-parent-abs": [E("link", "symlink", link="/"), E("link/tmp/evil", data=b"x")],
    "hardlink-dotdot": [E("hl", "hardlink", link="../outside/canary")],
    "hardlink-through-symlink": [
        E("link", "symlink", link="../outside"), E("hl", "hardlink", link="link/canary")],
    "hardlink-missing": [E("hl", "hardlink", link="nothere")],
    "hardlink-dir": [E("d", "dir", mode=0o755), E("hl", "hardlink", link="d")],
    "whiteout-dotdot": [E("../outside/.wh.canary")],
    "whiteout-through-symlink": [E("link", "symlink", link="../outside"), E("link/.wh.canary")],
    "whiteout-bad-name": [E("a/.wh...")],
    "duplicate-file": [E("f", data=b"1"), E("f", data=b"2")],
    "duplicate-symlink-then-file": [E("f", "symlink", link="../outside/canary"), E("f", data=b"2")],
    "root-not-dir": [E(".", data=b"x")],
    # a directory already checked, then replaced: entries below it are checked again
    "symlink-replaces-checked-dir": [
        E("a/x"), E("a", "symlink", link="../outside"), E("a/evil", data=b"x")],
    "whiteout-then-symlink-replaces-checked-dir": [
        E("a/x"), E(".wh.a"), E("a", "symlink", link="../outside"), E("a/evil", data=b"x")],
    "opaque-then-symlink-replaces-checked-dir": [
        E("b/sub/x"), E("b/.wh..wh..opq"), E("b/sub", "symlink", link="../../outside"),
        E("b/sub/evil", data=b"x")],
    "hardlink-through-replaced-dir": [
        E("a/x"), E("a", "symlink", link="../outside"), E("hl", "hardlink", link="a/canary")],
}


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
def test_hostile_tars_are_refused(box, entries, whiteouts) -> None:
    dest, outside = box
    with pytest.raises(LayerError) as err:
        extract(dest, make_tar(entries), whiteouts=whiteouts)
    assert "sha256:feed" in str(err.value) and "entry" in str(err.value)
    assert sorted(os.listdir(outside)) == ["canary"]
    assert (outside / "canary").read_text() == "safe"
    assert not Path("/tmp/evil").exists()


@pytest.mark.parametrize("media_type,compress", [(TGZ, gz), (TZST, None)])
def test_truncated_compressed_stream(box, media_type, compress) -> None:
    dest, _ = box
    raw = make_tar([E("f", data=os.urandom(200_000))])
    if compress is None:
        import zstandard

        blob = zstandard.ZstdCompressor().compress(raw)
    else:
        blob = compress(raw)
    with pytest.raises(LayerError, match="reading layer sha256:feed"):
        extract(dest, blob[: len(blob) // 2], media_type)


def test_garbage_is_refused(box) -> None:
    with pytest.raises(LayerError):
        extract(box[0], b"not a tar at all" * 100, TGZ)


def test_wrong_diff_id(box) -> None:
    raw = make_tar([E("f", data=b"hello")])
    with pytest.raises(DigestMismatch, match="expected sha256:0000"):
        extract(box[0], gz(raw), TGZ, diff_id="sha256:" + "0" * 64)
    extract(box[0] / ".." / "dest", gz(raw), TGZ, diff_id=diff_id(raw))  # trailing blocks hashed


def test_device_nodes_as_root(box) -> None:
    dest, _ = box
    extract(dest, make_tar([E("null", "char", dev=(1, 3), mode=0o666), E("p", "fifo")]))
    st = os.lstat(dest / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(dest / "p").st_mode)


def test_device_nodes_refused_when_not_root() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="pybuild-test-"))
    try:
        _device_nodes_refused_when_not_root(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _device_nodes_refused_when_not_root(tmp_path: Path) -> None:
    raw = tmp_path / "layer.tar"
    raw.write_bytes(make_tar([E("null", "char", dev=(1, 3))]))
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chown(dest, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    code = (
        "import sys; from pathlib import Path; from builder.rootfs.extract import extract_layer\n"
        "from builder.errors import LayerError\n"
        f"try: extract_layer(open({str(raw)!r}, 'rb'), 'x', Path({str(dest)!r}), layer_digest='d')\n"
        "except LayerError as e: print(e); sys.exit(3)\n"
    )
    # run from copies every user can read: the checkout or its venv may be under /root
    shutil.copytree(Path(builder.__file__).parent, tmp_path / "pkg" / "builder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "env", f"PYTHONPATH={tmp_path / 'pkg'}", python, "-c", code],
                          capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "device nodes can only be created as root" in proc.stdout
    assert not (dest / "null").exists()


def test_metadata_and_setuid_are_kept(box) -> None:
    dest, _ = box
    extract(dest, make_tar([
        E("bin", "dir", mode=0o555, mtime=1000),
        E("bin/su", data=b"#!", mode=0o4755, uid=12, gid=34, mtime=2000),
        E("bin/ping", data=b"x", xattrs={"security.capability": CAP.decode("utf-8", "surrogateescape")}),
        E("bin/sh", "symlink", link="/bin/busybox"),
        E("bin/su2", "hardlink", link="bin/su"),
    ]))
    st = os.lstat(dest / "bin/su")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 12, 34)
    assert int(st.st_mtime) == 2000 and st.st_nlink == 2
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    bindir = os.lstat(dest / "bin")
    assert stat.S_IMODE(bindir.st_mode) == 0o555 and int(bindir.st_mtime) == 1000
    assert os.getxattr(dest / "bin/ping", "security.capability") == CAP


def test_overlay_whiteouts(box) -> None:
    dest, _ = box
    extract(dest, make_tar([E("a", "dir", mode=0o755), E("a/.wh.gone"),
                            E("b", "dir", mode=0o755), E("b/.wh..wh..opq"), E("b/new")]))
    st = os.lstat(dest / "a/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "b", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "b")) == ["new"]


def test_applied_whiteouts(box) -> None:
    dest, _ = box
    extract(dest, make_tar([E("a", "dir", mode=0o755), E("a/gone"), E("a/kept"),
                            E("b", "dir", mode=0o755), E("b/old"), E("b/sub", "dir")]))
    extract(dest, make_tar([E("a/.wh.gone"), E("b/new"), E("b/.wh..wh..opq"),
                            E("c"), E(".wh.c")]), whiteouts="apply")
    assert sorted(os.listdir(dest / "a")) == ["kept"]
    assert sorted(os.listdir(dest / "b")) == ["new"]
    assert (dest / "c").exists()  # a whiteout never hides its own layer


def test_an_applied_opaque_marker_keeps_what_its_own_layer_put_below(box) -> None:
    """The marker may come after the layer's entries in a subdirectory that has no entry
    of its own (made as a parent); those are the layer's and stay."""
    dest, _ = box
    extract(dest, make_tar([E("b", "dir", mode=0o755), E("b/old"), E("b/sub", "dir"),
                            E("b/sub/old")]))
    extract(dest, make_tar([E("b/sub/new"), E("b/deeper/new/file"), E("b/.wh..wh..opq")]),
            whiteouts="apply")
    assert sorted(os.listdir(dest / "b")) == ["deeper", "sub"]
    assert sorted(os.listdir(dest / "b/sub")) == ["new"]
    assert (dest / "b/deeper/new/file").exists()


def test_later_layer_replaces_types(box) -> None:
    dest, _ = box
    extract(dest, make_tar([E("x", "dir"), E("x/inner"), E("y", data=b"file")]))
    extract(dest, make_tar([E("x", data=b"now a file"), E("y", "dir")]), whiteouts="apply")
    assert (dest / "x").read_bytes() == b"now a file"
    assert (dest / "y").is_dir()


def test_trusted_overlay_xattrs_from_tar_are_dropped(box) -> None:
    dest, _ = box
    extract(dest, make_tar([E("d", "dir", xattrs={"trusted.overlay.opaque": "y"})]))
    with pytest.raises(OSError):
        os.getxattr(dest / "d", "trusted.overlay.opaque")


def test_lower_layer_symlinks_are_not_trusted(box) -> None:
    dest, outside = box
    extract(dest, make_tar([E("d", "dir"), E("l", "symlink", link="../outside")]))
    with pytest.raises(LayerError, match="parent directory is a symlink"):
        extract(dest, make_tar([E("d/x"), E("l/evil", data=b"x")]), whiteouts="apply")
    assert sorted(os.listdir(outside)) == ["canary"]


def test_no_reader_thread_outlives_an_extraction(box) -> None:
    dest, _ = box
    raw = make_tar([E("f", data=os.urandom(3 << 20)), E("../evil")])
    with pytest.raises(LayerError, match="escapes"):
        extract(dest, gz(raw), TGZ)
    assert not [t for t in threading.enumerate() if t.name == "layer-reader"]


# -- in a user namespace (rootless pybuild): devices skipped, owners checked

USERNS_LAYER = [
    E("dev", "dir", mode=0o755), E("dev/null", "char", mode=0o666, dev=(1, 3)),
    E("dev/sda", "block", mode=0o660, gid=6, dev=(8, 0)), E("dev/fifo", "fifo", mode=0o600),
    E("dev/null-again", "hardlink", link="dev/null"),
    E("etc", "dir", mode=0o755), E("etc/.wh.gone"), E("opq", "dir", mode=0o755),
    E("opq/.wh..wh..opq"), E("opq/kept"),
    E("bin", "dir", mode=0o755), E("bin/suid", data=b"s", mode=0o4755),
    E("bin/capped", data=b"c", mode=0o755,
      xattrs={"security.capability": struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
              .decode("utf-8", "surrogateescape")}),
]
USERNS_SCRIPT = """
import io, json, os, stat, sys
from pathlib import Path
from builder.errors import IdMapError
from builder.rootfs.extract import extract_layer
raw = Path(sys.argv[1]).read_bytes()
out = {}
for mode in ("overlay", "apply"):
    dest = Path(sys.argv[2]) / mode
    dest.mkdir()
    extract_layer(io.BytesIO(raw), "application/vnd.oci.image.layer.v1.tar", dest,
                  layer_digest="sha256:feed", whiteouts=mode)
    listing = {}
    for path in sorted(dest.rglob("*")):
        st = os.lstat(path)
        xattrs = {n: os.getxattr(path, n, follow_symlinks=False).hex()
                  for n in os.listxattr(path, follow_symlinks=False)}
        listing[str(path.relative_to(dest))] = [stat.filemode(st.st_mode), st.st_rdev, xattrs]
    out[mode] = listing
try:
    extract_layer(io.BytesIO(Path(sys.argv[3]).read_bytes()),
                  "application/vnd.oci.image.layer.v1.tar", Path(sys.argv[2]) / "overlay",
                  layer_digest="sha256:beef")
except IdMapError as exc:
    out["error"] = [str(exc), exc.hint]
print(json.dumps(out))
"""


def test_in_a_user_namespace(tmp_path: Path) -> None:
    """Root mapped to itself alone (``unshare --user --map-root-user``): devices cannot be
    made, so they are skipped with one warning; whiteouts and opaque directories keep the
    overlay form overlay reads with ``userxattr``; an unmapped owner is an IdMapError."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root")
    (tmp_path / "layer.tar").write_bytes(make_tar(USERNS_LAYER))
    (tmp_path / "owned.tar").write_bytes(make_tar([E("home", "dir", uid=1000, gid=1000)]))
    (tmp_path / "out").mkdir()
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", USERNS_SCRIPT,
         str(tmp_path / "layer.tar"), str(tmp_path / "out"), str(tmp_path / "owned.tar")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(
            Path(builder.__file__).parents[1])})
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARN")]
    assert warnings == [
        "WARN[0000] extracting layer sha256:feed: skipped 3 device nodes (/dev/null, /dev/sda, "
        "/dev/null-again): device nodes cannot be created in a user namespace"] * 2
    overlay, applied = out["overlay"], out["apply"]
    for gone in ("dev/null", "dev/sda", "dev/null-again", "etc/gone"):  # nothing shows below
        assert overlay[gone][:2] == ["c---------", 0], gone
        assert gone not in applied
    assert overlay["dev/fifo"][0] == applied["dev/fifo"][0] == "prw-------"
    assert overlay["opq"][2] == {"user.overlay.opaque": b"y".hex()}
    assert overlay["bin/suid"][0] == "-rwsr-xr-x"
    capability = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0).hex()
    assert overlay["bin/capped"][2] == applied["bin/capped"][2] == {
        "security.capability": capability}
    message, hint = out["error"]
    assert message == ("extracting layer sha256:beef: '/home' is owned by uid 1000 and gid "
                       "1000, outside the ids this user namespace maps (uids 0, gids 0)")
    assert "/etc/subuid and /etc/subgid" in hint

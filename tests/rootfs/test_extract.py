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
from builder.errors import CompressedStreamError, DigestMismatch, LayerError
from builder.rootfs.extract import archive_format, extract_archive, extract_layer

from .tarbuild import E, diff_id, gz, make_tar

TAR = "application/vnd.oci.image.layer.v1.tar"
TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TZST = "application/vnd.oci.image.layer.v1.tar+zstd"


def extract(dest: Path, raw: bytes, media_type: str = TAR, **kw: object) -> None:
    extract_layer(io.BytesIO(raw), media_type, dest, layer_digest="sha256:feed", **kw)


def unpack(root: Path, raw: bytes, dest: str = "/", **kw: object) -> None:
    """ADD's unpacking of an archive (``extract_archive``) onto the root ``root``."""
    extract_archive(io.BytesIO(raw), root, dest, name="evil.tar", **kw)  # type: ignore[arg-type]


def _state(outside: Path) -> list[tuple[str, int, int, int, int, bytes]]:
    """What must not change outside: names, mode, owner, mtime and content."""
    found = []
    for path in [outside, *sorted(outside.rglob("*"))]:
        st = os.lstat(path)
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        found.append((path.name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, data))
    return found


class Box:
    """A destination next to a host directory it must never change: ``untouched()`` checks
    the host directory's names, contents, modes, owners and mtimes, and that nothing new
    appeared beside the destination."""

    def __init__(self, tmp_path: Path) -> None:
        self.top = tmp_path
        self.dest, self.outside = tmp_path / "dest", tmp_path / "outside"
        self.dest.mkdir()
        self.outside.mkdir()
        (self.outside / "canary").write_text("safe")
        os.chmod(self.outside, 0o750)
        os.utime(self.outside / "canary", (1000, 1000))
        os.utime(self.outside, (2000, 2000))
        self.before = _state(self.outside)

    def __iter__(self):  # (dest, outside), as tests unpack it
        return iter((self.dest, self.outside))

    def __getitem__(self, index: int) -> Path:
        return (self.dest, self.outside)[index]

    def untouched(self) -> None:
        assert sorted(os.listdir(self.top)) == ["dest", "outside"]
        assert _state(self.outside) == self.before
        assert not Path("/tmp/evil").exists()


@pytest.fixture
def box(tmp_path: Path) -> Box:
    """(dest, outside): dest sits next to a directory it must never change."""
    return Box(tmp_path)


def outside_links(entries: list[E], outside: Path) -> list[E]:
    """The entries with ``{outside}`` in names and link targets made the host path."""
    return [E(e.name.replace("{outside}", str(outside)), e.kind, e.data,
              e.link.replace("{outside}", str(outside)), e.mode, e.uid, e.gid, e.mtime,
              e.xattrs, e.dev) for e in entries]


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
    # a directory, then a symlink to a host directory in its place: the directory's
    # metadata (applied last) must never reach the host directory through the link
    "dir-then-symlink-to-host": [
        E("a", "dir", mode=0o777, mtime=5), E("a", "symlink", link="{outside}")],
    "symlink-parent-host": [E("link", "symlink", link="{outside}"), E("link/evil", data=b"x")],
    "hardlink-to-host": [E("hl", "hardlink", link="{outside}/canary")],
    "dotdot-dir-then-symlink": [
        E("a/", "dir", mode=0o777, mtime=5), E("a/../../outside", "dir", mode=0o777)],
}
# accepted (they break no rule), but nothing may land outside
CONTAINED = {
    "parent-of-checked-dir-becomes-host-symlink": [
        E("p/a", "dir", mode=0o777, mtime=5), E("p", "symlink", link="{outside}")],
    "deep-dir-then-parent-symlink": [
        E("p/q/r", "dir", mode=0o700, mtime=5), E("p/q/r/f", data=b"x"),
        E("p", "symlink", link="../outside")],
}
# what ADD refuses of HOSTILE. The rest it unpacks, as Buildah 1.28 does (chrooted in the
# destination): ``..`` stops at the destination, absolute names land below it, parents that
# are symlinks are followed inside it (one that dangles is refused), whiteouts are files,
# duplicates replace
ARCHIVE_REFUSED = {
    "symlink-parent", "hardlink-dotdot", "hardlink-through-symlink", "hardlink-missing",
    "hardlink-dir", "whiteout-through-symlink", "root-not-dir", "symlink-replaces-checked-dir",
    "whiteout-then-symlink-replaces-checked-dir", "opaque-then-symlink-replaces-checked-dir",
    "hardlink-through-replaced-dir", "symlink-parent-host", "hardlink-to-host",
}


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
def test_hostile_tars_are_refused(box, entries, whiteouts) -> None:
    dest, outside = box
    with pytest.raises(LayerError) as err:
        extract(dest, make_tar(outside_links(entries, outside)), whiteouts=whiteouts)
    assert "sha256:feed" in str(err.value) and "entry" in str(err.value)
    box.untouched()


@pytest.mark.parametrize("entries", CONTAINED.values(), ids=CONTAINED.keys())
@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
def test_contained_tars_stay_inside(box, entries, whiteouts) -> None:
    dest, outside = box
    extract(dest, make_tar(outside_links(entries, outside)), whiteouts=whiteouts)
    box.untouched()


ARCHIVE_CASES = {**HOSTILE, **CONTAINED}


@pytest.mark.parametrize("entries", ARCHIVE_CASES.values(), ids=ARCHIVE_CASES.keys())
@pytest.mark.parametrize("dest_path", ["/", "/sub/dir"])
def test_hostile_archives_are_refused_or_contained(box, request, entries, dest_path) -> None:
    """ADD unpacks with the same extractor: what a layer refuses either is refused or, by
    the rules of unpacking onto a root (parents followed inside it), lands inside the
    root; the host directory next to it never changes (names, content, mode, owner,
    mtime)."""
    name = request.node.callspec.id.split("-", 1)[1]
    root, outside = box
    raw = make_tar(outside_links(entries, outside))
    if name in ARCHIVE_REFUSED:
        with pytest.raises(LayerError) as err:
            unpack(root, raw, dest_path)
        assert "archive evil.tar" in str(err.value) and "entry" in str(err.value)
    else:
        unpack(root, raw, dest_path)
    box.untouched()


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


# -- ADD's unpacking of archives (extract_archive)


def _compress(raw: bytes, kind: str) -> bytes:
    import bz2
    import lzma

    import zstandard

    return {"none": lambda b: b, "gzip": gz, "bzip2": bz2.compress, "xz": lzma.compress,
            "zstd": zstandard.ZstdCompressor().compress}[kind](raw)


@pytest.mark.parametrize("kind", ["none", "gzip", "bzip2", "xz", "zstd"])
def test_archives_of_every_compression_unpack(tmp_path: Path, kind: str) -> None:
    blob = _compress(make_tar([E("top", "dir", mode=0o750, mtime=1000),
                               E("top/f", data=b"data", mode=0o640, uid=7, gid=8, mtime=2000),
                               E("top/l", "symlink", link="f"),
                               E("top/h", "hardlink", link="top/f")]), kind)
    assert archive_format(io.BytesIO(blob)) == kind
    unpack(tmp_path, blob, "/into")
    st = os.lstat(tmp_path / "into/top/f")
    assert (tmp_path / "into/top/f").read_bytes() == b"data" and st.st_nlink == 2
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == \
        (0o640, 7, 8, 2000)
    assert os.readlink(tmp_path / "into/top/l") == "f"
    top = os.lstat(tmp_path / "into/top")
    assert (stat.S_IMODE(top.st_mode), int(top.st_mtime)) == (0o750, 1000)


@pytest.mark.parametrize("data", [b"", b"plain text\n" * 100, gz(b"not a tar" * 100),
                                  bytes(1024), b"\x1f\x8b" + b"\0" * 600],
                         ids=["empty", "text", "gzipped-text", "zero-blocks", "bad-gzip"])
def test_files_that_are_not_archives(data: bytes) -> None:
    assert archive_format(io.BytesIO(data)) is None


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_truncated_archives_are_refused(tmp_path: Path, kind: str) -> None:
    blob = _compress(make_tar([E("f", data=os.urandom(100_000))]), kind)
    with pytest.raises(CompressedStreamError, match=f"archive evil.tar: truncated or corrupt {kind}"):
        unpack(tmp_path, blob[: len(blob) // 2])


def test_parents_that_are_symlinks_are_followed_inside_the_root(tmp_path: Path) -> None:
    """Merged /usr: ``bin/hello`` lands in usr/bin; a directory entry ``bin/`` replaces
    the symlink with a directory (Buildah 1.28 and Docker do both)."""
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/lib").mkdir(parents=True)
    os.symlink("usr/bin", tmp_path / "bin")
    os.symlink("/usr/lib", tmp_path / "lib")  # absolute: resolved inside the root too
    unpack(tmp_path, make_tar([E("bin/hello", data=b"hi"), E("lib/x/y", data=b"y")]))
    assert (tmp_path / "usr/bin/hello").read_bytes() == b"hi"
    assert (tmp_path / "usr/lib/x/y").read_bytes() == b"y"
    assert os.readlink(tmp_path / "bin") == "usr/bin"
    unpack(tmp_path, make_tar([E("bin", "dir", mode=0o755), E("bin/other", data=b"o")]))
    assert not (tmp_path / "bin").is_symlink() and (tmp_path / "bin/other").exists()
    assert (tmp_path / "usr/bin/hello").exists()


def test_a_symlink_destination_is_resolved_inside_the_root(box) -> None:
    root, outside = box
    os.symlink(str(outside), root / "dest-link")  # to the host path: inside the root, missing
    unpack(root, make_tar([E("f", data=b"x")]), "/dest-link")
    assert (root / str(outside).lstrip("/") / "f").read_bytes() == b"x"
    box.untouched()


def test_archive_rules_that_differ_from_layers(tmp_path: Path) -> None:
    """Whiteout names are ordinary files, a later entry replaces an earlier one, absolute
    names land below the destination, the ``.`` entry leaves the destination alone."""
    (tmp_path / "d").mkdir(mode=0o711)
    os.utime(tmp_path / "d", (3000, 3000))
    unpack(tmp_path, make_tar([
        E(".", "dir", mode=0o777, mtime=5), E(".wh.gone", data=b"w"),
        E("sub/.wh..wh..opq", data=b"o"), E("f", data=b"1"), E("f", data=b"2"),
        E("/abs/file", data=b"a")]), "/d")
    d = tmp_path / "d"
    assert (d / ".wh.gone").read_bytes() == b"w" and (d / "sub/.wh..wh..opq").exists()
    assert (d / "f").read_bytes() == b"2" and (d / "abs/file").read_bytes() == b"a"
    st = os.lstat(d)
    assert stat.S_IMODE(st.st_mode) == 0o711


def test_archive_device_nodes_follow_the_layer_rules(tmp_path: Path) -> None:
    unpack(tmp_path, make_tar([E("null", "char", dev=(1, 3), mode=0o666), E("p", "fifo")]))
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p").st_mode)


def test_archive_device_nodes_refused_when_not_root() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="pybuild-test-"))
    try:
        raw = tmp_path / "a.tar"
        raw.write_bytes(make_tar([E("ok", data=b"x"), E("null", "char", dev=(1, 3))]))
        dest = tmp_path / "dest"
        dest.mkdir()
        os.chown(dest, 65534, 65534)
        os.chmod(tmp_path, 0o755)
        code = (
            "import sys; from pathlib import Path\n"
            "from builder.rootfs.extract import extract_archive\n"
            "from builder.errors import LayerError\n"
            f"try: extract_archive(open({str(raw)!r}, 'rb'), Path({str(dest)!r}), name='a.tar')\n"
            "except LayerError as e: print(e); sys.exit(3)\n"
        )
        shutil.copytree(Path(builder.__file__).parent, tmp_path / "pkg" / "builder",
                        ignore=shutil.ignore_patterns("__pycache__"))
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "env", f"PYTHONPATH={tmp_path / 'pkg'}", python, "-c", code],
                              capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert "archive a.tar: entry 'null': device nodes can only be created as root" \
            in proc.stdout
        assert (dest / "ok").read_bytes() == b"x" and os.lstat(dest / "ok").st_uid == 65534
        assert not (dest / "null").exists()
    finally:
        shutil.rmtree(tmp_path)


def test_the_destination_is_the_archive_root(tmp_path: Path) -> None:
    """As Buildah 1.28 unpacks (chrooted in the destination): ``..`` stops at it, an
    absolute symlink and a relative one climbing out both resolve inside it, hard link
    targets too; the root's own ``/x`` is untouched."""
    for where in ("x", "dest/x"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "keep").write_text(where)
    unpack(tmp_path, make_tar([
        E("link", "symlink", link="/x"), E("link/f", data=b"f"),
        E("rl", "symlink", link="../../x"), E("rl/g", data=b"g"),
        E("../escape", data=b"e"), E("y/../../z", data=b"z"),
        E("hl", "hardlink", link="../x/keep")]), "/dest")
    dest = tmp_path / "dest"
    assert sorted(os.listdir(dest / "x")) == ["f", "g", "keep"]
    assert (dest / "escape").read_bytes() == b"e" and (dest / "z").read_bytes() == b"z"
    assert os.stat(dest / "hl").st_ino == os.stat(dest / "x" / "keep").st_ino
    assert sorted(os.listdir(tmp_path / "x")) == ["keep"]
    with pytest.raises(LayerError, match="'link/through': parent directory is a symlink to nothing"):
        unpack(tmp_path, make_tar([E("link", "symlink", link="/etc"),
                                   E("link/through", data=b"t")]), "/other")

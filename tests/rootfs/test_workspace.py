"""Workspaces on both drivers: changes() as layer entries, commit, round trips."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from builder.image.layer import Layer, write_layer
from builder.rootfs.extract import extract_layer
from builder.rootfs.layercache import layer_cache_dir
from builder.rootfs.workspace import Workspace, detect_driver
from builder.store import Store

from .tarbuild import E, diff_id, gz, make_tar

TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DRIVERS = ["overlay", "vfs"]

BASE = [
    E("etc", "dir", mode=0o755), E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
    E("keep", "dir", mode=0o755), E("keep/a", data=b"a"), E("keep/b", data=b"b"),
    E("mod", "dir", mode=0o755), E("mod/f", data=b"old"),
    E("del", "dir", mode=0o755), E("del/x"), E("del/sub", "dir"), E("del/sub/y"),
    E("dir2file", "dir", mode=0o755), E("dir2file/c"),
    E("file2dir", data=b"f"), E("recreate", data=b"1"), E("perm", mode=0o644),
    E("own"), E("opq", "dir", mode=0o755), E("opq/old1"), E("opq/old2"),
    E("link", "symlink", link="keep/a"),
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def put_layer(store: Store, entries: list[E]) -> Layer:
    raw = make_tar(entries)
    digest, size = store.layout.put_blob(gz(raw))
    return Layer(digest, diff_id(raw), size, TGZ)


def use_fuse_overlayfs(store: Store) -> None:
    """Make overlays under ``store`` mount with fuse-overlayfs (the choice where the
    kernel's overlay cannot mount, in a user namespace before Linux 5.11)."""
    from builder.rootfs import workspace

    program = shutil.which("fuse-overlayfs")
    if program is None or os.geteuid() != 0:
        pytest.skip("fuse-overlayfs (run as root) is needed")
    workspace._probe_results[os.fspath(store.root)] = program


@pytest.fixture(params=[*DRIVERS, "fuse-overlayfs"])
def driver(request: pytest.FixtureRequest, store: Store) -> str:
    if request.param == "fuse-overlayfs":
        use_fuse_overlayfs(store)
        return "overlay"
    if request.param == "overlay" and detect_driver(store.root) != "overlay":
        pytest.skip("overlay cannot be mounted here")
    return str(request.param)


def test_fuse_overlayfs_mounts(store: Store) -> None:
    use_fuse_overlayfs(store)
    with Workspace.create(store, [put_layer(store, BASE)]) as ws:
        mounts = Path("/proc/self/mountinfo").read_text()
        assert f" {ws.root} " in mounts and "fuse.fuse-overlayfs" in mounts
        assert (ws.root / "keep/a").read_bytes() == b"a"


def tree(root: Path) -> dict[str, tuple]:
    """A comparable listing: type, mode, owner, content or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                body: object = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


def mutate(root: Path) -> None:
    (root / "new.txt").write_text("new")
    os.link(root / "new.txt", root / "new-hardlink")
    (root / "newdir/sub").mkdir(parents=True)
    (root / "newdir/sub/file").write_text("deep")
    (root / "mod/f").write_text("new content")
    shutil.rmtree(root / "del")
    (root / "keep/a").unlink()
    shutil.rmtree(root / "dir2file")
    (root / "dir2file").write_text("now a file")
    (root / "file2dir").unlink()
    (root / "file2dir").mkdir()
    (root / "file2dir/in").write_text("in")
    (root / "recreate").unlink()
    (root / "recreate").write_text("2")
    os.chmod(root / "perm", 0o4711)
    os.chown(root / "own", 1000, 1000)
    shutil.rmtree(root / "opq")
    (root / "opq").mkdir()
    (root / "opq/new").write_text("n")
    os.unlink(root / "link")
    os.symlink("/etc/passwd", root / "link")
    os.symlink("new.txt", root / "newlink")


def test_changes_and_round_trip(store, driver, tmp_path) -> None:
    base = put_layer(store, BASE)
    with Workspace.create(store, [base], driver=driver) as ws:
        assert ws.driver == driver
        assert ws.changes() == []
        mutate(ws.root)
        entries = ws.changes()
        paths = [e.path for e in entries]
        assert paths == sorted(paths)
        must = {"new.txt", "new-hardlink", "newdir", "newdir/sub", "newdir/sub/file",
                "mod/f", ".wh.del", "keep/.wh.a", "dir2file", "file2dir", "file2dir/in",
                "recreate", "perm", "own", "opq", "opq/new", "link", "newlink"}
        assert must <= set(paths)
        assert not any(p.startswith(("del/", "dir2file/", "etc")) for p in paths), paths
        assert "keep/b" not in paths
        if driver == "overlay":
            assert "opq/.wh..wh..opq" in paths
        else:
            assert {"opq/.wh.old1", "opq/.wh.old2"} <= set(paths)
        for e in entries:
            assert (e.source is None) == os.path.basename(e.path).startswith(".wh.")
        # the layer applied on top of the base reproduces the workspace exactly
        result = write_layer(entries, store.layout, compression="gzip")
        check = tmp_path / "check"
        check.mkdir()
        for layer in (base, result):
            with store.layout.open_blob(layer.digest) as blob:
                extract_layer(blob, layer.media_type, check, layer_digest=layer.digest,
                              diff_id=layer.diff_id, whiteouts="apply")
        assert tree(check) == tree(ws.root)
        assert os.lstat(check / "new.txt").st_ino == os.lstat(check / "new-hardlink").st_ino


def test_commit_starts_a_new_diff(store, driver) -> None:
    with Workspace.create(store, [], driver=driver) as ws:
        (ws.root / "one").write_text("1")
        assert [e.path for e in ws.changes()] == ["one"]
        first = write_layer(ws.changes(), store.layout)
        ws.commit(first.diff_id)
        assert ws.changes() == []
        (ws.root / "one").unlink()
        (ws.root / "two").write_text("2")
        assert [e.path for e in ws.changes()] == [".wh.one", "two"]
        if driver == "overlay":
            assert (layer_cache_dir(store.root, first.diff_id) / "one").read_text() == "1"
    assert not (Path(store.root) / "workspaces" / ws.base.name).exists()


def test_scratch_and_untouched_dirs(store, driver) -> None:
    base = put_layer(store, BASE)
    with Workspace.create(store, [base], driver=driver) as ws:
        etc = ws.root / "etc"
        before = os.stat(etc)
        (etc / "hosts").write_text("x")  # a mount point made and removed, mtime restored
        (etc / "hosts").unlink()
        os.utime(etc, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert ws.changes() == []


def test_layer_cache_is_shared(store) -> None:
    if detect_driver(store.root) != "overlay":
        pytest.skip("overlay cannot be mounted here")
    base = put_layer(store, BASE)
    with Workspace.create(store, [base]) as one, Workspace.create(store, [base]) as two:
        (one.root / "only-in-one").write_text("x")
        assert not (two.root / "only-in-one").exists()
        assert one.lowers == two.lowers
    assert (layer_cache_dir(store.root, base.diff_id) / "keep/a").exists()


def test_close_is_idempotent(store, driver) -> None:
    ws = Workspace.create(store, [], driver=driver)
    ws.close()
    ws.close()
    assert not ws.base.exists()


def test_a_deep_stack_mounts_without_moving_the_working_directory(tmp_path: Path) -> None:
    """120 lowers do not fit mount(2)'s page as absolute paths, nor as names relative to
    the layer cache; they are mounted by short links, from a thread of its own, never
    by changing the process's cwd. A prune leaves no dangling link."""
    store = Store(tmp_path / ("long-store-path-" * 8))
    if detect_driver(store.root) != "overlay":
        pytest.skip("overlay cannot be mounted here")
    diff_ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(120)]
    diff_ids[1] = diff_ids[0][:12] + diff_ids[1][12:]  # two short names alike
    cwd, seen, done = os.getcwd(), set(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(os.getcwd())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with Workspace.create(store, [], driver="overlay") as ws:
            for i, hex_id in enumerate(diff_ids):
                (ws.root / f"layer{i}").write_text(str(i))
                ws.commit(f"sha256:{hex_id}")
            assert len(":".join(p.name for p in ws.lowers)) > 4096
            assert sorted(p.name for p in ws.root.iterdir()) == sorted(
                f"layer{i}" for i in range(120))
            assert (ws.root / "layer0").read_text() == "0"
    finally:
        done.set()
        watcher.join()
    assert seen == {cwd}
    links = store.root / "layers" / ".links"
    assert sorted(map(len, os.listdir(links))) == [12] * 119 + [64]  # one shared its 12
    assert store.prune(all_layers=True).layers == 120
    assert os.listdir(links) == []

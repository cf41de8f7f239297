"""The extracted-layer cache trusts an entry only while a marker vouches for it:
written in this boot, or synced; anything else is extracted again from its blob."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from builder.errors import StoreError
from builder.image.layer import Layer
from builder.rootfs import layercache, workspace
from builder.rootfs.layercache import cache_layer, forget, layer_cache_dir, promote, trusted
from builder.rootfs.workspace import Workspace, detect_driver
from builder.store import Store

from .tarbuild import E, diff_id, gz, make_tar

TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
CONTENT = b"the whole file\n" * 100


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def layer(store: Store) -> Layer:
    raw = make_tar([E("data", "dir", mode=0o755), E("data/file", data=CONTENT)])
    digest, size = store.layout.put_blob(gz(raw))
    return Layer(digest, diff_id(raw), size, TGZ)


def markers(store: Store, kind: str) -> list[str]:
    path = store.root / "layers" / ".trust" / kind
    return sorted(os.listdir(path)) if path.is_dir() else []


def age(store: Store) -> None:
    """Make every pending marker two minutes old, as if written two minutes ago."""
    then = time.time() - 120
    for name in markers(store, "pending"):
        os.utime(store.root / "layers" / ".trust" / "pending" / name, (then, then))


def tear(entry: Path) -> None:
    """What a crash can leave of unsynced writes: the file is there, its data is not."""
    os.truncate(entry / "data" / "file", 0)


def test_an_extraction_is_trusted_in_this_boot_and_synced_later(store, layer) -> None:
    entry = cache_layer(store, layer)
    assert (entry / "data" / "file").read_bytes() == CONTENT
    assert markers(store, "pending") == [entry.name] and markers(store, "synced") == []
    assert trusted(entry)
    assert promote(store) == 0  # younger than a minute: left to the kernel's writeback
    age(store)
    assert promote(store) == 1
    assert markers(store, "pending") == [] and markers(store, "synced") == [entry.name]
    assert trusted(entry)
    assert cache_layer(store, layer) == entry


@pytest.mark.parametrize("how", ["another boot", "no marker", "replaced directory"])
def test_an_entry_nothing_vouches_for_is_extracted_again(store, layer, how) -> None:
    entry = cache_layer(store, layer)
    tear(entry)
    pending = store.root / "layers" / ".trust" / "pending" / entry.name
    if how == "another boot":  # written before a crash: the boot ID has changed since
        _, _, identity = pending.read_text().partition(" ")
        pending.write_text(f"00000000-0000-0000-0000-000000000000 {identity}")
    elif how == "no marker":  # copied in, or made by an earlier pybuild
        pending.unlink()
    else:  # a directory made later under the same name
        os.rename(entry, entry.with_name("old"))
        shutil.copytree(entry.with_name("old"), entry)
    assert not trusted(entry)
    assert (cache_layer(store, layer) / "data" / "file").read_bytes() == CONTENT
    assert trusted(entry)
    assert sorted(os.listdir(entry.parent)) == sorted(
        [".trust", entry.name, *(["old"] if how == "replaced directory" else [])])


@pytest.mark.parametrize("how", ["another boot", "replaced directory"])
def test_promotion_drops_markers_that_do_not_vouch(store, layer, how) -> None:
    entry = cache_layer(store, layer)
    pending = store.root / "layers" / ".trust" / "pending" / entry.name
    if how == "another boot":
        pending.write_text("another-boot " + pending.read_text().partition(" ")[2])
    else:
        os.rename(entry, entry.with_name("old"))
        shutil.copytree(entry.with_name("old"), entry)
    age(store)
    assert promote(store) == 0
    assert markers(store, "pending") == [] and markers(store, "synced") == []
    assert not trusted(entry)


def test_forget_removes_the_markers_with_the_entry(store, layer) -> None:
    entry = cache_layer(store, layer)
    age(store)
    assert promote(store) == 1
    forget(entry)
    assert not entry.exists()
    assert markers(store, "synced") == [] and markers(store, "pending") == []


def test_prune_removes_markers_of_the_layers_it_removes(store, layer) -> None:
    entry = cache_layer(store, layer)
    assert store.prune(all_layers=True).layers == 1
    assert not entry.exists() and markers(store, "pending") == []


@pytest.fixture
def overlay(store: Store) -> Store:
    if detect_driver(store.root) != "overlay":
        pytest.skip("overlay cannot be mounted here")
    return store


def _volatile(path: Path) -> bool:
    """Whether the overlay at ``path`` is mounted volatile (shown as ``fsync=volatile``
    by recent kernels, ``volatile`` before)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == os.fspath(path):
                options = fields[fields.index("-") + 3].split(",")
                return "volatile" in options or "fsync=volatile" in options
    raise AssertionError(f"{path} is not mounted")


def test_a_committed_upper_directory_is_volatile_and_pending(overlay) -> None:
    with Workspace.create(overlay, []) as ws:
        assert _volatile(ws.root)
        (ws.root / "new").write_text("x")
        ws.commit("sha256:" + "1" * 64)
        entry = layer_cache_dir(overlay.root, "sha256:" + "1" * 64)
        assert (entry / "new").read_text() == "x"
        assert markers(overlay, "pending") == [entry.name]
        assert (ws.root / "new").read_text() == "x"  # now seen through the lower layer


def test_without_volatile_a_commit_is_synced_at_once(overlay, monkeypatch) -> None:
    monkeypatch.setattr(workspace, "VOLATILE", False)
    with Workspace.create(overlay, []) as ws:
        assert not _volatile(ws.root)
        (ws.root / "new").write_text("x")
        ws.commit("sha256:" + "2" * 64)
    assert markers(overlay, "synced") == ["2" * 64] and markers(overlay, "pending") == []


def test_without_a_boot_id_entries_are_synced_when_installed(store, layer, monkeypatch) -> None:
    monkeypatch.setattr(layercache, "boot_id", lambda: "")
    entry = cache_layer(store, layer)
    assert markers(store, "synced") == [entry.name] and markers(store, "pending") == []


def test_an_upper_directory_still_in_use_never_becomes_a_layer(overlay) -> None:
    with Workspace.create(overlay, []) as ws:
        (ws.root / "busy").write_text("x")
        with open(ws.root / "busy") as held:
            with pytest.raises(StoreError, match="still"):
                ws.commit("sha256:" + "3" * 64)
            assert held.read() == "x"  # detached, not yanked away
        assert not layer_cache_dir(overlay.root, "sha256:" + "3" * 64).exists()
    assert not ws.base.exists()


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_extraction_records_the_layers_it_verified(store: Store, layer: Layer,
                                                   driver: str) -> None:
    """Extraction checks the diff_id anyway: it records the layer as verified, so an
    import of an image with this layer does not read it again."""
    from builder.rootfs.verify import verified_diff_id

    if driver == "overlay" and detect_driver(store.root) != "overlay":
        pytest.skip("overlay does not mount here")
    digest, want = layer.digest, layer.diff_id
    assert verified_diff_id(store.root, digest) is None
    with Workspace.create(store, [layer], driver=driver):
        pass
    assert verified_diff_id(store.root, digest) == want

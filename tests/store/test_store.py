"""The image store: names, lookup, tag/untag/remove, gc, locking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import ImageError, ImageNotFound, StoreError, UsageError
from builder.image.spec import ANNOTATION_REF_NAME, ImageConfig
from builder.store import Store, normalize_name

from .helpers import make_image


@pytest.mark.parametrize("name, expected", [
    ("app", "localhost/app:latest"),
    ("app:1.0", "localhost/app:1.0"),
    ("quay.io/x/y", "quay.io/x/y:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost/app", "localhost/app:latest"),
    ("my/app", "localhost/my/app:latest"),
    ("app@sha256:" + "a" * 64, "localhost/app@sha256:" + "a" * 64),
    # the registry client's grammar: every Docker Hub alias, a digest replaces the tag
    ("registry-1.docker.io/busybox", "docker.io/library/busybox:latest"),
    ("quay.io/x/y:1@sha256:" + "b" * 64, "quay.io/x/y@sha256:" + "b" * 64),
])
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize("bad", ["App", "app:", "a b", "app@sha256:zz", "",
                                 "app@md5:" + "a" * 32, "bad_host:5000/app"])
def test_normalize_name_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        normalize_name(bad)


def test_unwritable_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="opening image store"):
        Store(tmp_path / "file" / "store")


def test_lookup_forms(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    rec = make_image(store, tmp_path, "a", ("app:1.0",))
    other = make_image(store, tmp_path, "b", ("docker.io/library/busybox:latest",))
    for ref in ["app:1.0", "localhost/app:1.0", rec.id, rec.id[7:], rec.id[7:10],
                "sha256:" + rec.id[7:12], rec.manifest_digest,
                f"localhost/app@{rec.manifest_digest}"]:
        assert store.lookup(ref).id == rec.id, ref
    assert store.lookup("busybox").id == other.id
    assert store.lookup("docker.io/busybox").id == other.id
    for ref in ["app", "nothing", "quay.io/app:1.0", "ab"]:
        with pytest.raises(ImageNotFound):
            store.lookup(ref)
    assert rec.names == ("localhost/app:1.0",)
    assert ImageConfig.from_json(store.layout.read_blob(rec.id)) == rec.config


def test_tag_moves_names_and_untag_keeps_image(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    a = make_image(store, tmp_path, "a", ("app",))
    b = make_image(store, tmp_path, "b")
    assert store.lookup(b.id).names == ()
    store.tag(b.id, "app", "other:2")
    assert store.lookup("app").id == b.id
    assert store.lookup(a.id).names == ()  # dangling, still stored
    assert set(store.lookup(b.id).names) == {"localhost/app:latest", "localhost/other:2"}
    store.untag("other:2", "other:2")
    assert store.lookup(b.id).names == ("localhost/app:latest",)
    store.untag("app")
    assert store.lookup(b.id).names == () and len(store.images()) == 2
    with pytest.raises(ImageNotFound):
        store.untag(b.id, "never")


def test_remove_and_gc(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    a = make_image(store, tmp_path, "a", ("app", "app:2"))
    b = make_image(store, tmp_path, "b", ("keep",))
    with pytest.raises(StoreError, match="several names"):
        store.remove(a.id)
    assert store.remove("app:2") == ["untagged: localhost/app:2"]
    assert store.remove("app") == ["untagged: localhost/app:latest", a.id[7:]]
    with pytest.raises(ImageNotFound):
        store.lookup(a.id)
    blobs = set(store.layout.blob_digests())
    assert a.id not in blobs and a.manifest_digest not in blobs
    assert {b.id, b.manifest_digest, *(x.digest for x in b.manifest.layers)} == blobs
    store.layout.put_blob(b"orphan")
    assert store.gc() == 1


def test_gc_waits_for_pins(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with store.pin():
        digest, _ = store.layout.put_blob(b"layer in progress")
        assert Store(tmp_path / "s").gc() == 0
        assert store.layout.has_blob(digest)
    assert not store.layout.has_blob(digest)  # the skipped gc ran when the last pin ended
    assert not (tmp_path / "s" / "gc.pending").exists()
    assert store.gc() == 0


def test_gc_without_pins_leaves_nothing_pending(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.layout.put_blob(b"orphan")
    assert store.gc() == 1
    assert not (tmp_path / "s" / "gc.pending").exists()


def test_put_manifest_requires_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    rec = make_image(store, tmp_path, "a")
    manifest = store.layout.read_blob(rec.manifest_digest)
    store.layout.remove_blob(rec.manifest.layers[0].digest)
    with pytest.raises(ImageError, match="missing"):
        store.put_manifest(manifest, ["x"])


def test_index_names_are_ref_name_annotations(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    make_image(store, tmp_path, "a", ("app:1", "app:2"))
    names = [(d.annotations or {}).get(ANNOTATION_REF_NAME) for d in store.layout.read_index().manifests]
    assert names == ["localhost/app:1", "localhost/app:2"]


def test_concurrent_tagging_loses_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    rec = make_image(store, tmp_path, "a", ("base",))
    code = (
        "import sys\nfrom pathlib import Path\nfrom builder.store import Store\n"
        "s = Store(Path(sys.argv[1]))\n"
        "for i in range(15):\n"
        "    s.tag(sys.argv[2], f'p{sys.argv[3]}-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s"), rec.id, str(n)])
             for n in range(4)]
    assert [p.wait() for p in procs] == [0] * 4
    assert len(store.lookup(rec.id).names) == 1 + 4 * 15

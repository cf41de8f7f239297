"""A COPY into an empty root planned as layer entries gives the same layer bytes as
copying the files and reading the result back."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from builder.executor.copier import CopyRequest, SourceTree, copy_into, planned_entries
from builder.image.layer import tree_entries, write_layer
from builder.image.layout import Layout

CLAMP = 1_000_000_000  # later than the sources, earlier than directories made now


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctx = tmp_path_factory.mktemp("ctx")
    for rel, data in [("a.txt", b"a"), ("dir/b.bin", b"\0" * 3000), ("dir/sub/c", b"c"),
                      ("dir/sub/deep/d", b""), ("other/dir/b.bin", b"x"), ("x", b"file x")]:
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    os.chmod(ctx / "dir" / "sub" / "c", 0o4750)
    os.link(ctx / "a.txt", ctx / "dir" / "hard")
    os.symlink("sub/c", ctx / "dir" / "link")
    os.symlink("a.txt", ctx / "top-link")
    (ctx / "other" / "x").mkdir()
    (ctx / "other" / "x" / "inner").write_bytes(b"i")
    os.setxattr(ctx / "a.txt", "user.note", b"not copied")
    for n, (base, dirs, files) in enumerate(os.walk(ctx)):
        for name in dirs + files:
            os.utime(os.path.join(base, name), (1000 + n, 1000 + n), follow_symlinks=False)
    return ctx


CASES = [
    (("dir/",), "/tree/", {}),
    (("dir",), "/", {}),
    (("a.txt",), "/a/b/renamed", {}),
    (("a.txt", "dir/hard"), "/d", {}),
    (("*.txt", "top-link"), "/g/", {}),
    (("dir", "other"), "/merged/", {}),
    (("x", "other"), "/over/", {}),
    (("other", "x"), "/over/", {}),
    (("dir/",), "/o/", {"owner": (12, 34), "chmod": "g+w,o-r"}),
    ((".",), "/all/", {"chmod": "0700"}),
    (("a.txt", "dir/sub"), "//x/../y/./", {}),
]


@pytest.mark.parametrize("sources,dest,extra", CASES)
def test_same_layer_as_copying(context: Path, tmp_path: Path, sources: tuple[str, ...],
                               dest: str, extra: dict[str, object]) -> None:
    request = CopyRequest("COPY", sources, dest, dest.endswith("/"), **extra)  # type: ignore[arg-type]
    tree = SourceTree(context, None, True)
    layout = Layout(tmp_path / "out")
    planned = planned_entries(request, tree)
    assert planned is not None
    root = tmp_path / "root"
    root.mkdir()
    copy_into(root, request, tree)
    copied = write_layer(tree_entries(root), layout, compression="none", timestamp=CLAMP)
    assert write_layer(planned, layout, compression="none", timestamp=CLAMP) == copied


@pytest.mark.parametrize("extra", [{"heredocs": {"h": b"x"}}, {"parents": True},
                                   {"excludes": ("*.txt",)}, {"keyword": "ADD"}])
def test_not_planned(context: Path, extra: dict[str, object]) -> None:
    request = CopyRequest(**{"keyword": "COPY", "sources": ("dir",), "dest": "/d/",  # type: ignore[arg-type]
                             "dest_is_dir": True, **extra})
    assert planned_entries(request, SourceTree(context)) is None


def test_scratch_copy_builds_the_copied_layer(pybuild, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "sub").mkdir(parents=True)
    (ctx / "src" / "sub" / "f").write_text("hello\n")
    (ctx / "Containerfile").write_text(
        "FROM scratch\nCOPY --chown=5:6 src/ /app/\nCOPY src/sub/f /app/g\n")
    pybuild("bud", "--compression", "none", "-t", "x", str(ctx))
    pybuild("push", "x", f"oci:{tmp_path / 'out'}:latest")
    layout = Layout(tmp_path / "out")
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    manifest = json.loads(layout.blob_path(index["manifests"][0]["digest"]).read_text())
    layers = []
    for layer in manifest["layers"]:
        with tarfile.open(layout.blob_path(layer["digest"])) as tar:
            layers.append({m.name: (m.uid, m.gid, m.size) for m in tar})
    assert layers == [
        {"app": (5, 6, 0), "app/sub": (5, 6, 0), "app/sub/f": (5, 6, 6)},
        {"app": (5, 6, 0), "app/g": (0, 0, 6)},
    ]

"""COPY/ADD on plain directories: patterns, modes, owners, destinations, containment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.context import context_path, resolve_in_root
from builder.errors import ContextError, StepError
from builder.executor.copier import (
    CopyRequest,
    SourceTree,
    apply_chmod,
    check_chmod,
    copy_into,
    go_match,
)
from builder.executor.users import copy_owner


@pytest.mark.parametrize("pattern,name,expected", [
    ("*.txt", "a.txt", True), ("*.txt", "dir/a.txt", False), ("a?c", "abc", True),
    ("a?c", "a/c", False), ("[a-c]x", "bx", True), ("[^a-c]x", "bx", False),
    ("[^a-c]x", "dx", True), ("\\*", "*", True), ("\\*", "a", False), ("*", "", True),
    ("dir/*", "dir/f", True), ("a[", "a[", None),
])
def test_go_match(pattern: str, name: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(StepError, match="syntax error in pattern"):
            go_match(pattern, name)
    else:
        assert go_match(pattern, name) is expected


@pytest.mark.parametrize("spec,mode,is_dir,expected", [
    ("755", 0o644, False, 0o755), ("0640", 0o777, False, 0o640),
    ("u+x", 0o644, False, 0o744), ("go-w", 0o666, False, 0o644),
    ("a=r", 0o777, False, 0o444), ("a+X", 0o644, False, 0o644), ("a+X", 0o644, True, 0o755),
    ("u=rwx,g=rx,o=", 0o000, False, 0o750), ("+x", 0o600, False, 0o711),
    ("u+s,+t", 0o755, False, 0o5755),
])
def test_chmod(spec: str, mode: int, is_dir: bool, expected: int) -> None:
    check_chmod(spec)
    assert apply_chmod(spec, mode, is_dir) == expected


@pytest.mark.parametrize("spec", ["", "9", "u+q", "x=r", "12345", "u+x,"])
def test_bad_chmod(spec: str) -> None:
    with pytest.raises(StepError, match="invalid mode"):
        check_chmod(spec)


def test_owner_lookup(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert copy_owner(tmp_path, "app") == (1000, 1001)
    assert copy_owner(tmp_path, "app:staff") == (1000, 50)
    assert copy_owner(tmp_path, "42") == (42, 42)
    assert copy_owner(tmp_path, "42:7") == (42, 7)
    assert copy_owner(tmp_path, "0:staff") == (0, 50)
    assert copy_owner(tmp_path, ":staff") == (0, 50)  # Buildah: root with that group
    assert copy_owner(tmp_path, ":55") == (0, 55)
    for bad, message in (("ghost", "can't find uid for user 'ghost'"),
                         ("app:nogroup", "can't find gid for group 'nogroup'"),
                         (":", "no user or group given")):
        with pytest.raises(StepError, match=message):
            copy_owner(tmp_path, bad)


def test_context_path_and_resolution(tmp_path: Path) -> None:
    assert [context_path(p) for p in (".", "./a/../b", "/x/y", "/../z")] == ["", "b", "x/y", "z"]
    for bad in ("..", "../x", "a/../../x"):
        with pytest.raises(ContextError, match="forbidden path outside the build context"):
            context_path(bad)
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "abs")
    os.symlink("../../../..", root / "up")
    os.symlink("loop", root / "loop")
    assert resolve_in_root(root, "/abs/f") == root / "real" / "f"
    assert resolve_in_root(root, "up/etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "abs", follow_last=False) == root / "abs"
    with pytest.raises(ContextError, match="too many levels of symbolic links"):
        resolve_in_root(root, "loop/x")


def _tree(root: Path) -> dict[str, tuple[str, int, int, int, str]]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        out[str(path.relative_to(root))] = (
            kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
            os.readlink(path) if kind == "link" else path.read_text() if kind == "file" else "")
    return out


@pytest.fixture
def context(tmp_path: Path) -> SourceTree:
    ctx = tmp_path / "ctx"
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "a.txt").write_text("a")
    (ctx / "b.txt").write_text("b")
    (ctx / "dir" / "f").write_text("f")
    (ctx / "dir" / "sub" / "g").write_text("g")
    os.chmod(ctx / "dir" / "f", 0o700)
    os.symlink("../a.txt", ctx / "dir" / "rel-link")
    os.symlink("/etc/passwd", ctx / "outside")
    os.link(ctx / "a.txt", ctx / "hard.txt")
    return SourceTree(ctx, None, True)


def _copy(root: Path, tree: SourceTree | None, sources: tuple[str, ...], dest: str,
          **kw: object) -> dict:
    copy_into(root, CopyRequest("COPY", sources, dest, dest.endswith("/"), **kw), tree)
    return _tree(root)


def test_destination_rules(tmp_path: Path, context: SourceTree) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tree = _copy(root, context, ("a.txt",), "/file")
    assert tree["file"] == ("file", 0o644, 0, 0, "a")
    tree = _copy(root, context, ("a.txt",), "/into/")
    assert tree["into/a.txt"][4] == "a"
    tree = _copy(root, context, ("*.txt",), "/globbed")
    assert {"globbed/a.txt", "globbed/b.txt", "globbed/hard.txt"} <= set(tree)
    tree = _copy(root, context, ("dir",), "/contents")
    assert "contents/f" in tree and "contents/dir" not in tree
    assert tree["contents/f"][1] == 0o700
    assert tree["contents/rel-link"] == ("link", 0o777, 0, 0, "../a.txt")
    tree = _copy(root, context, ("a.txt",), "/file")  # replacing an existing file
    assert tree["file"][4] == "a"
    tree = _copy(root, context, ("a.txt", "hard.txt"), "/links/")
    assert os.stat(root / "links" / "a.txt").st_ino == os.stat(root / "links" / "hard.txt").st_ino


def test_top_level_symlink_stays_in_context(tmp_path: Path, context: SourceTree) -> None:
    """A top-level source link is followed inside the context; ``outside -> /etc/passwd``
    dangles there, and a dangling source link is "not found", as in Buildah 1.28 and
    BuildKit (it was copied as a link before)."""
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(StepError, match="'outside': no such file or directory$"):
        _copy(root, context, ("outside",), "/o")
    assert os.listdir(root) == []


def test_destination_symlinks_resolve_inside_root(tmp_path: Path,
                                                  context: SourceTree) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/real", root / "dirlink")
    os.symlink("/../../../../tmp", root / "escape")
    _copy(root, context, ("a.txt",), "/dirlink/")
    _copy(root, context, ("b.txt",), "/escape/")
    assert (root / "real" / "a.txt").read_text() == "a"
    assert (root / "tmp" / "b.txt").read_text() == "b"


def test_chown_chmod_and_ignored_paths(tmp_path: Path, context: SourceTree) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tree = _copy(root, context, ("dir",), "/d", owner=(7, 8), chmod="go-rwx")
    assert {v[2:4] for k, v in tree.items() if k.startswith("d")} == {(7, 8)}
    assert tree["d/sub/g"][1] == 0o600
    filtered = SourceTree(context.root, frozenset({"a.txt", "dir", "dir/f"}), True, ".ignore")
    root2 = tmp_path / "root2"
    root2.mkdir()
    tree = _copy(root2, filtered, ("dir",), "/d")
    assert sorted(tree) == ["d", "d/f"]
    with pytest.raises(StepError, match=r"'b.txt': no such file or directory \(filtered out"):
        _copy(root2, filtered, ("b.txt",), "/")


def test_heredoc_and_missing_sources(tmp_path: Path, context: SourceTree) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tree = _copy(root, None, ("EOF",), "/etc/motd", heredocs={"EOF": b"hi\n"}, timestamp=0)
    assert tree["etc/motd"] == ("file", 0o644, 0, 0, "hi\n")
    assert (root / "etc" / "motd").stat().st_mtime == 0
    with pytest.raises(StepError, match="'nope': no such file or directory"):
        _copy(root, context, ("nope",), "/")
    with pytest.raises(StepError, match="pattern '\\*.none' matched nothing"):
        _copy(root, context, ("*.none",), "/")
    _copy(root, context, ("*.none", "a.txt"), "/tolerated/")
    with pytest.raises(StepError, match="forbidden path outside the build context"):
        _copy(root, context, ("../ctx/a.txt",), "/")

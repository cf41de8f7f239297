"""What a RUN bind mount of the context shows: the context without what the ignore file
excludes, as an overlay (root) or a copy (otherwise); the context itself never changes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from builder.errors import ContextError
from builder.executor import contextview
from builder.executor.copier import SourceTree, context_tree
from builder.ignore import IgnoreMatcher


@pytest.fixture
def tree(tmp_path: Path) -> SourceTree:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "deep").mkdir(parents=True)
    (ctx / "node_modules" / "m").mkdir(parents=True)
    (ctx / "src" / "a.py").write_text("a")
    (ctx / "src" / "debug.log").write_text("log")
    (ctx / "src" / "deep" / "b.py").write_text("b")
    (ctx / "src" / "deep" / "trace.log").write_text("log")
    (ctx / "node_modules" / "m" / "index.js").write_text("js")
    (ctx / "secret.env").write_text("secret")
    os.symlink("secret.env", ctx / "link")
    os.symlink("src", ctx / "srclink")
    os.chmod(ctx / "src", 0o750)
    os.utime(ctx / "src", (1000, 1000))
    os.chmod(ctx, 0o751)
    os.utime(ctx, (2000, 2000))
    return context_tree(ctx, IgnoreMatcher(["node_modules", "**/*.log", "secret.env"]))


def _listing(path: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), path)
                  for d, dirs, files in os.walk(path) for n in dirs + files)


def test_hidden_below_lists_the_excluded_frontier(tree: SourceTree) -> None:
    assert contextview.hidden_below(tree, "") == (
        "node_modules", "secret.env", "src/debug.log", "src/deep/trace.log")
    assert contextview.hidden_below(tree, "src") == ("debug.log", "deep/trace.log")


@pytest.mark.parametrize("source, error", [
    ("secret.env", "source 'secret.env' not found"), ("link", "source 'link' not found"),
    ("nothere", "source 'nothere' not found"), ("node_modules/m", "not found"),
    ("../x", "outside the build context")])
def test_mount_sources_that_are_absent(tree: SourceTree, source: str, error: str) -> None:
    with pytest.raises(ContextError, match=error):
        contextview.mount_source(tree, source, "/t")


def test_a_linked_source_is_followed_inside_the_context(tree: SourceTree) -> None:
    path, hidden = contextview.mount_source(tree, "srclink", "/t")
    assert path == tree.root / "src" and hidden == ("debug.log", "deep/trace.log")


@pytest.fixture(params=["overlay", "copy"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "overlay" and os.geteuid() != 0:
        pytest.skip("the overlay view needs root")
    if request.param == "copy":
        monkeypatch.setattr(contextview, "_overlay",
                            lambda *args: contextlib.nullcontext(None))
    return str(request.param)


@pytest.mark.parametrize("writable", [False, True], ids=["ro", "rw"])
def test_views_leave_out_what_is_excluded(tree: SourceTree, kind: str, writable: bool) -> None:
    before = _listing(tree.root)
    hidden = contextview.hidden_below(tree, "")
    with contextview.view(tree.root, hidden, writable=writable) as shown:
        assert _listing(shown) == ["link", "src", "src/a.py", "src/deep", "src/deep/b.py",
                                   "srclink"]
        assert os.readlink(shown / "link") == "secret.env"  # dangling in the view
        assert not (shown / "link").exists()
        st = os.stat(shown / "src")
        assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o750, 1000)
        st = os.stat(shown)
        assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o751, 2000)
        same = os.stat(shown / "src" / "a.py").st_ino == os.stat(tree.root / "src/a.py").st_ino
        if kind == "copy":
            assert same != writable  # hard links for a read-only view, copies otherwise
        if writable:
            (shown / "src" / "a.py").write_text("changed")
            (shown / "new").write_text("new")
    assert _listing(tree.root) == before
    assert (tree.root / "src" / "a.py").read_text() == "a"


def test_an_ordinary_user_gets_a_linked_copy() -> None:
    """Without root (no overlay mount) the view is a copy: hard links where the user may
    make them; the context itself is left alone."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to become an ordinary user")
    tmp_path = Path(tempfile.mkdtemp(prefix="pybuild-test-"))  # every user can enter it
    try:
        _ordinary_user_view(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _ordinary_user_view(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    import builder

    ctx = tmp_path / "ctx"
    (ctx / "keep").mkdir(parents=True)
    (ctx / "keep" / "a").write_text("a")
    (ctx / "secret.env").write_text("secret")
    os.symlink("secret.env", ctx / "link")
    shutil.copytree(Path(builder.__file__).parent, tmp_path / "pkg" / "builder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(tmp_path, 0o755)
    subprocess.run(["chown", "-R", "65534:65534", ctx], check=True)
    code = (
        "import os; from pathlib import Path; from builder.executor.contextview import view\n"
        f"src = Path({str(ctx)!r})\n"
        "with view(src, ('secret.env',), writable=False) as shown:\n"
        "    print(sorted(os.listdir(shown)), 'merged' in str(shown),\n"
        "          os.stat(shown / 'keep' / 'a').st_ino == os.stat(src / 'keep' / 'a').st_ino)\n"
    )
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "env", f"PYTHONPATH={tmp_path / 'pkg'}", python, "-c", code],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("]")[0] == "['keep', 'link'"
    assert proc.stdout.split("]")[1].split() == ["False", "True"]
    assert sorted(os.listdir(ctx)) == ["keep", "link", "secret.env"]

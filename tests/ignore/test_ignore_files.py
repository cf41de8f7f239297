"""Ignore-file discovery and context walking on real directory trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from builder.errors import IgnoreError
from builder.ignore import IgnoreMatcher, find_ignore_file, load_ignore


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)


@pytest.mark.parametrize(
    ("present", "containerfile", "expected"),
    [
        ([], None, None),
        ([".dockerignore"], None, ".dockerignore"),
        ([".containerignore", ".dockerignore"], None, ".containerignore"),
        ([".dockerignore", "CF.dockerignore"], "CF", "CF.dockerignore"),
        (
            [".containerignore", "Containerfile.containerignore", "Containerfile.dockerignore"],
            "Containerfile",
            "Containerfile.containerignore",
        ),
        ([".dockerignore", "Dockerfile.test.dockerignore"], "Dockerfile.other", ".dockerignore"),
        ([".dockerignore", "sub/CF.dockerignore"], "sub/CF", "sub/CF.dockerignore"),
    ],
)
def test_find_ignore_file(
    tmp_path: Path, present: list[str], containerfile: str | None, expected: str | None
) -> None:
    make_tree(tmp_path, present)
    found = find_ignore_file(tmp_path, Path(containerfile) if containerfile else None)
    assert found == (tmp_path / expected if expected else None)


def test_containerfile_outside_context(tmp_path: Path) -> None:
    make_tree(tmp_path, ["ctx/.dockerignore", "elsewhere/Containerfile.containerignore"])
    found = find_ignore_file(tmp_path / "ctx", tmp_path / "elsewhere" / "Containerfile")
    assert found == tmp_path / "elsewhere" / "Containerfile.containerignore"


def test_symlink_outside_context_is_not_used(tmp_path: Path) -> None:
    make_tree(tmp_path, ["outside/ignore", "ctx/hello"])
    (tmp_path / "outside" / "ignore").write_text("hello\n")
    (tmp_path / "ctx" / ".dockerignore").symlink_to(tmp_path / "outside" / "ignore")
    assert find_ignore_file(tmp_path / "ctx") is None
    assert not load_ignore(tmp_path / "ctx").excluded("hello")


def test_symlink_inside_context_is_used(tmp_path: Path) -> None:
    make_tree(tmp_path, ["ctx/rules", "ctx/hello"])
    (tmp_path / "ctx" / "rules").write_text("hello\n")
    (tmp_path / "ctx" / ".dockerignore").symlink_to("rules")
    assert load_ignore(tmp_path / "ctx").excluded("hello")


def test_load_ignore(tmp_path: Path) -> None:
    (tmp_path / ".containerignore").write_text("# comment\n*.log\n!keep.log\n/build/\n")
    matcher = load_ignore(tmp_path)
    assert matcher.patterns == ("*.log", "!keep.log", "build")
    assert matcher.source == tmp_path / ".containerignore"
    assert matcher.excluded("a.log") and matcher.excluded("build/x")
    assert not matcher.excluded("keep.log")


def test_load_ignore_bad_pattern(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("[\n")
    with pytest.raises(IgnoreError):
        load_ignore(tmp_path)


TREE = [
    "Containerfile",
    "README.md",
    "a.log",
    "docs/guide.md",
    "docs/img/logo.png",
    "node_modules/x/index.js",
    "node_modules/y/keep/me.js",
    "build/out/a.o",
    "build/out/b.o",
    "build/keep/c.txt",
    "src/main.py",
    "src/tmp/scratch.log",
    "empty/",
]


def walk(tmp_path: Path, patterns: list[str]) -> list[str]:
    make_tree(tmp_path, TREE)
    return [rel for rel, _ in IgnoreMatcher(patterns).walk(tmp_path)]


def test_walk_without_patterns(tmp_path: Path) -> None:
    got = walk(tmp_path, [])
    expected = sorted(
        {t.rstrip("/") for t in TREE}
        | {"docs", "docs/img", "node_modules", "node_modules/x", "node_modules/y"}
        | {"node_modules/y/keep", "build", "build/out", "build/keep", "src", "src/tmp"}
    )
    assert sorted(got) == expected
    # pre-order: every directory comes right before its sorted contents
    order = [got.index(p) for p in ("build", "build/keep", "build/keep/c.txt", "build/out")]
    assert order == sorted(order)


def test_walk_with_exceptions(tmp_path: Path) -> None:
    patterns = ["**/*.log", "build", "!build/keep", "node_modules", "!**/keep/*.js", "docs/img"]
    got = walk(tmp_path, patterns)
    assert got == [
        "Containerfile",
        "README.md",
        "build",
        "build/keep",
        "build/keep/c.txt",
        "docs",
        "docs/guide.md",
        "empty",
        "node_modules",
        "node_modules/y",
        "node_modules/y/keep",
        "node_modules/y/keep/me.js",
        "src",
        "src/main.py",
        "src/tmp",
    ]


def test_walk_agrees_with_excluded(tmp_path: Path) -> None:
    patterns = ["*", "!src", "src/tmp", "!**/scratch.log", "!docs/*/logo.png"]
    got = walk(tmp_path, patterns)
    matcher = IgnoreMatcher(patterns)
    kept_files = sorted(
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
        if not matcher.excluded(os.path.relpath(os.path.join(d, f), tmp_path))
    )
    assert sorted(r for r in got if (tmp_path / r).is_file()) == kept_files
    assert "docs" in got and "docs/img/logo.png" in got and "src/tmp/scratch.log" in got


def test_walk_skips_ignored_directories_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, ["keep", "secret/deep/file", "vendor/a/b.js", "vendor/keep/c.js"])
    scanned: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> os._ScandirIterator[str]:  # type: ignore[name-defined]
        scanned.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    got = [rel for rel, _ in IgnoreMatcher(["secret", "vendor", "!vendor/keep"]).walk(tmp_path)]
    assert got == ["keep", "vendor", "vendor/keep", "vendor/keep/c.js"]
    assert sorted(scanned) == [".", "vendor", "vendor/keep"]  # not secret, not vendor/a


@pytest.mark.parametrize(
    ("exception", "directory", "may"),
    [
        ("!build/keep", "build", True),
        ("!build/keep", "build/keep", False),
        ("!build/keep", "other", False),
        ("!**/keep", "anything/at/all", True),
        ("!b*/k?ep/x", "build", True),
        ("!b*/k?ep/x", "build/keep", True),
        ("!b*/k?ep/x", "build/other", False),
        ("!a[^x]b", "a", True),
        ("!a\\/b", "a", True),
        ("!dir/**", "dir", True),
    ],
)
def test_may_reinclude(exception: str, directory: str, may: bool) -> None:
    assert IgnoreMatcher(["*", exception])._may_reinclude(directory) is may


def test_walk_does_not_follow_symlinks(tmp_path: Path) -> None:
    make_tree(tmp_path, ["real/file"])
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "dangling").symlink_to("nowhere")
    got = dict(IgnoreMatcher(["real/file"]).walk(tmp_path))
    assert sorted(got) == ["dangling", "link", "real"]
    assert stat.S_ISLNK(got["link"].st_mode) and stat.S_ISLNK(got["dangling"].st_mode)

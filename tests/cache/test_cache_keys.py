"""Which changes invalidate a cached step and which do not (table-driven, real builds)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cache.changes import edit, hits, nothing, replace
from tests.conftest import Pybuild

BASE = """FROM localhost/busybox:latest
ARG USED=1
ENV E=1
COPY --chmod=644 src/ /src/
RUN --mount=type=secret,id=tok cat /src/a > /out
"""


def _context(tmp_path: Path, containerfile: str = BASE) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Containerfile").write_text(containerfile)
    (ctx / "src" / "a").write_text("a\n")
    (ctx / "src" / "b").write_text("b\n")
    (ctx / "skip.log").write_text("x\n")
    (ctx / ".containerignore").write_text("*.log\n")
    (tmp_path / "secret").write_text("one")
    return ctx


def _build(pybuild: Pybuild, ctx: Path, *flags: str) -> str:
    secret = ctx.parent / "secret"
    res = pybuild("bud", "--timestamp", "0", f"--secret=id=tok,src={secret}", *flags, "-t", "t",
                  ctx)
    return res.stdout


# (name, change, extra flags for the second build, expected cached keywords)
CASES = [
    ("nothing", nothing, (), ["ARG", "ENV", "COPY", "RUN"]),
    ("mtime only", lambda ctx: os.utime(ctx / "src" / "a", (1, 1)), (), ["ARG", "ENV", "COPY", "RUN"]),
    ("ignored file", edit("skip.log", "changed\n"), (), ["ARG", "ENV", "COPY", "RUN"]),
    ("unused build arg", nothing, ("--build-arg", "UNUSED=2"), ["ARG", "ENV", "COPY", "RUN"]),
    ("secret content", lambda ctx: (ctx.parent / "secret").write_text("two"), (),
     ["ARG", "ENV", "COPY", "RUN"]),
    ("file content", edit("src/b", "B\n"), (), ["ARG", "ENV"]),
    ("file mode", lambda ctx: os.chmod(ctx / "src" / "b", 0o600), ("--layers=true",),
     ["ARG", "ENV"]),
    ("file owner", lambda ctx: os.chown(ctx / "src" / "b", 1234, 1234), (), ["ARG", "ENV"]),
    ("used build arg", nothing, ("--build-arg", "USED=2"), []),
    ("env before", replace("ENV E=1", "ENV E=2"), (), ["ARG"]),
    ("chmod flag", replace("--chmod=644", "--chmod=640"), (), ["ARG", "ENV"]),
    ("secret id", replace("id=tok", "id=other"), (), ["ARG", "ENV", "COPY"]),
    ("no-cache", nothing, ("--no-cache",), []),
    ("layers false", nothing, ("--layers", "false"), []),
]


@pytest.mark.parametrize("name,change,flags,cached", CASES, ids=[c[0] for c in CASES])
def test_invalidation(name: str, change: Callable[[Path], None], flags: tuple[str, ...],
                      cached: list[str], tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path)
    with_busybox.own(ctx)  # the user builds their own files
    first = _build(with_busybox, ctx)
    assert hits(first) == []
    change(ctx)
    second = _build(with_busybox, ctx, *flags)
    assert hits(second) == cached, second


# the context's metadata as a rootless build sees it: an owner outside the user's id map
# is the overflow id, yet a change of owner still changes the key
METADATA = [c for c in CASES if c[0] in ("nothing", "file mode", "file owner")]


@pytest.mark.parametrize("lane", ["rootless"], indirect=True)
@pytest.mark.parametrize("name,change,flags,cached", METADATA, ids=[c[0] for c in METADATA])
def test_invalidation_rootless(name: str, change: Callable[[Path], None], flags: tuple[str, ...],
                               cached: list[str], tmp_path: Path, with_busybox: Pybuild) -> None:
    test_invalidation(name, change, flags, cached, tmp_path, with_busybox)


HEREDOC = """FROM localhost/busybox:latest
COPY <<EOF /greeting
hello
EOF
RUN <<EOF
cat /greeting > /copy
EOF
"""


def test_heredoc_text(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path, HEREDOC)
    _build(with_busybox, ctx)
    assert hits(_build(with_busybox, ctx)) == ["COPY", "RUN"]
    (ctx / "Containerfile").write_text(HEREDOC.replace("cat /greeting", "cat  /greeting"))
    assert hits(_build(with_busybox, ctx)) == ["COPY"]
    (ctx / "Containerfile").write_text(HEREDOC.replace("hello", "bye"))
    assert hits(_build(with_busybox, ctx)) == []


@pytest.mark.rootless
def test_base_image_digest(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path, "FROM localhost/busybox:latest\nRUN echo hi > /hi\n")
    _build(with_busybox, ctx)
    assert hits(_build(with_busybox, ctx)) == ["RUN"]
    base = tmp_path / "base"
    base.mkdir()
    (base / "Containerfile").write_text("FROM localhost/busybox:latest\nLABEL new=base\n")
    with_busybox("bud", "-q", "-t", "localhost/busybox:latest", base)
    assert hits(_build(with_busybox, ctx)) == []


def _blobs(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (root / "blobs" / "sha256").iterdir()}


@pytest.mark.rootless
def test_fully_cached_build_gives_the_same_image(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path, "FROM localhost/busybox:latest\nRUN date > /now\nCOPY src /src\n")
    first = with_busybox("bud", "-q", "-t", "t", ctx).stdout.strip()
    blobs = _blobs(with_busybox.root)
    second = with_busybox("bud", "-q", "-t", "t", ctx).stdout.strip()
    assert first == second  # no --timestamp: the cached steps' creation time is reused
    assert _blobs(with_busybox.root) == blobs  # nothing rewritten


@pytest.mark.rootless
def test_cached_build_mounts_nothing(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path, "FROM localhost/busybox:latest\nRUN echo hi > /hi\nWORKDIR /w\n")
    with_busybox("bud", "-q", "-t", "t", ctx)
    layers = with_busybox.root / "layers"
    for layer in layers.iterdir():  # a workspace would need these extracted layers
        os.rename(layer, layer.with_name(".gone-" + layer.name))
    out = with_busybox("bud", "-t", "t", ctx).stdout
    assert hits(out) == ["RUN", "WORKDIR"]
    assert not [p for p in layers.iterdir() if not p.name.startswith(".gone-")]

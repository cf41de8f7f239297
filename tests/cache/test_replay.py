"""Rebuilds answered from a build record (``builder.replay``): they print what a normal
fully cached rebuild prints and give the same image, and any change to what the build
read sends the next build down the normal path (real builds, table-driven)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cache.changes import edit, hits, nothing, replace
from tests.conftest import Pybuild

BASE = """FROM localhost/busybox:latest
ARG USED=1
ENV E=1
COPY --chmod=644 src/ /src/
COPY glob*/ /glob/
RUN cat /src/a > /out
"""


def _context(tmp_path: Path, containerfile: str = BASE) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "sub").mkdir(parents=True)
    (ctx / "globa").mkdir()
    (ctx / "docs").mkdir()
    (ctx / "Containerfile").write_text(containerfile)
    (ctx / "src" / "a").write_text("a\n")
    (ctx / "src" / "sub" / "b").write_text("b\n")
    (ctx / "globa" / "g").write_text("g\n")
    (ctx / "skip.log").write_text("x\n")
    (ctx / ".containerignore").write_text("*.log\n")
    return ctx


def _build(pybuild: Pybuild, ctx: Path, *flags: str, check: bool = True) -> tuple[bool, str, str]:
    """(replayed, stdout, stderr) of one build. A replayed build never parses the
    Containerfile, so the parse cache it would refill stays empty."""
    shutil.rmtree(pybuild.root / "cache" / "parsed", ignore_errors=True)
    res = pybuild("bud", *flags, "-t", "t", ctx, check=check, cwd=ctx.parent)
    return not (pybuild.root / "cache" / "parsed").exists(), res.stdout, res.stderr


def _normal(pybuild: Pybuild, ctx: Path, *flags: str) -> tuple[bool, str, str]:
    """The same build with the records removed: the normal path."""
    shutil.rmtree(pybuild.root / "cache" / "replay", ignore_errors=True)
    return _build(pybuild, ctx, *flags)


def _parent_swapped(ctx: Path) -> None:
    (ctx / "src" / "sub").rename(ctx / "real")
    (ctx / "src" / "sub").symlink_to("../real")


ALL = ["ARG", "ENV", "COPY", "COPY", "RUN"]
# (name, change, flags of the second build, replayed, cached steps when not replayed)
CASES = [
    ("nothing", nothing, (), True, ALL),
    ("ignored file", edit("skip.log", "changed\n"), (), True, ALL),
    ("unrelated new file", edit("docs/notes.txt", "n\n"), (), True, ALL),
    ("mtime only", lambda ctx: os.utime(ctx / "src" / "a", (1, 1)), (), False, ALL),
    ("file content", edit("src/sub/b", "B\n"), (), False, ["ARG", "ENV"]),
    ("file mode", lambda ctx: os.chmod(ctx / "src" / "a", 0o600), (), False, ["ARG", "ENV"]),
    ("file owner", lambda ctx: os.chown(ctx / "src" / "a", 1234, 1234), (), False,
     ["ARG", "ENV"]),
    ("new file in a copied dir", edit("src/sub/c", "c\n"), (), False, ["ARG", "ENV"]),
    ("new match of a glob", lambda ctx: (ctx / "globb").mkdir(), (), False,
     ["ARG", "ENV", "COPY"]),
    ("directory swapped for a link", _parent_swapped, (), False, ["ARG", "ENV"]),
    ("ignore file", edit(".containerignore", "*.log\nsrc/sub\n"), (), False, ["ARG", "ENV"]),
    ("Containerfile", replace("ENV E=1", "ENV E=2"), (), False, ["ARG"]),
    ("other flags", nothing, ("--label", "x=y"), False, ALL),
]


@pytest.mark.parametrize("name,change,flags,replayed,cached", CASES, ids=[c[0] for c in CASES])
def test_invalidation(name: str, change: Callable[[Path], None], flags: tuple[str, ...],
                      replayed: bool, cached: list[str], tmp_path: Path,
                      with_busybox: Pybuild) -> None:
    ctx = _context(tmp_path)
    first = _build(with_busybox, ctx, "--timestamp", "0")
    assert not first[0] and hits(first[1]) == []
    change(ctx)
    second = _build(with_busybox, ctx, "--timestamp", "0", *flags)
    assert second[0] == replayed, second
    assert hits(second[1]) == cached, second[1]
    if replayed:
        assert second[1:] == _normal(with_busybox, ctx, "--timestamp", "0", *flags)[1:]


def test_environment(tmp_path: Path, with_busybox: Pybuild) -> None:
    """A build arg taken from the environment and SOURCE_DATE_EPOCH are inputs too."""
    ctx = _context(tmp_path)
    with_busybox.env["USED"] = "1"
    _build(with_busybox, ctx, "--build-arg", "USED")
    assert _build(with_busybox, ctx, "--build-arg", "USED")[0]
    with_busybox.env["USED"] = "2"
    replayed, out, _ = _build(with_busybox, ctx, "--build-arg", "USED")
    assert not replayed and hits(out) == []
    assert _build(with_busybox, ctx, "--build-arg", "USED")[0]
    with_busybox.env["SOURCE_DATE_EPOCH"] = "5"
    replayed, out, _ = _build(with_busybox, ctx, "--build-arg", "USED")
    assert not replayed and "COPY" not in hits(out)


def test_store_changes(tmp_path: Path, with_busybox: Pybuild) -> None:
    """A retagged base, a removed image or a pruned cache: the normal path decides."""
    ctx = _context(tmp_path)
    first = _build(with_busybox, ctx)[1].split()[-1]
    with_busybox("rmi", "t")
    replayed, out, _ = _build(with_busybox, ctx)
    assert not replayed and out.split()[-1] == first  # tagged again, from the cache
    base = tmp_path / "base"
    base.mkdir()
    (base / "Containerfile").write_text("FROM localhost/busybox:latest\nLABEL new=base\n")
    with_busybox("bud", "-q", "-t", "localhost/busybox:latest", base)
    replayed, out, _ = _build(with_busybox, ctx)
    assert not replayed and hits(out) == []
    assert _build(with_busybox, ctx)[0]
    with_busybox("prune")
    assert not _build(with_busybox, ctx)[0]


EXAMPLES = {
    "warnings": ("FROM localhost/busybox:latest\nARG USED\nHEALTHCHECK CMD true\n"
                 "SHELL [\"/bin/sh\", \"-c\"]\nRUN echo hi > /hi\nVOLUME /data\n",
                 ("--build-arg", "UNUSED=1")),
    "multi-stage": ("FROM localhost/busybox:latest AS a\nRUN mkdir /o && echo a > /o/a\n"
                    "FROM localhost/busybox:latest AS b\nRUN mkdir /o && echo b > /o/b\n"
                    "FROM scratch\nCOPY --from=a /o/a /a\nCOPY --from=b /o/ /b/\n", ()),
    "onbuild base": ("FROM localhost/busybox:latest\nONBUILD RUN echo child > /child\n",
                     ("--format", "docker")),
    "quiet": ("FROM localhost/busybox:latest\nRUN echo q > /q\n", ("-q",)),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_replay_prints_what_a_cached_build_prints(name: str, tmp_path: Path,
                                                  with_busybox: Pybuild) -> None:
    containerfile, flags = EXAMPLES[name]
    ctx = _context(tmp_path, containerfile)
    cold = _build(with_busybox, ctx, *flags, "--iidfile", "id.txt")
    (tmp_path / "id.txt").unlink()
    replayed = _build(with_busybox, ctx, *flags, "--iidfile", "id.txt")
    assert replayed[0]
    assert (tmp_path / "id.txt").read_text() == "sha256:" + cold[1].split()[-1]
    normal = _normal(with_busybox, ctx, *flags, "--iidfile", "id.txt")
    assert not normal[0]
    if name == "multi-stage":  # stages run at once: their lines may come in any order
        assert sorted(replayed[1].splitlines()) == sorted(normal[1].splitlines())
    else:
        assert replayed[1] == normal[1]
    assert replayed[2] == normal[2]
    assert replayed[1].split()[-1] == cold[1].split()[-1]
    if name == "warnings":
        assert "HEALTHCHECK" in replayed[2] and "UNUSED" in replayed[2]
    if name == "quiet":
        assert replayed[1].strip() == cold[1].strip()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A web server on the loopback, serving one file."""
    served = tmp_path / "www"
    served.mkdir()
    (served / "file.txt").write_text("downloaded\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/file.txt"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("flags,add", [
    (("--no-cache",), False),
    (("--layers=false",), False),
    (("--squash",), False),
    (("--secret", "id=s,env=HOME"), False),
    ((), True),  # a download without --checksum runs every time
])
def test_builds_that_leave_no_record(flags: tuple[str, ...], add: bool, tmp_path: Path,
                                     with_busybox: Pybuild, web: str) -> None:
    ctx = _context(tmp_path, BASE + (f"ADD {web} /web.txt\n" if add else ""))
    records = with_busybox.root / "cache" / "replay"
    before = set(records.iterdir())  # the base image's build left one
    _build(with_busybox, ctx, *flags)
    assert set(records.iterdir()) == before
    assert not _build(with_busybox, ctx, *flags)[0]

"""``bud --output``: the target's root file system out to a directory or a tar.

Rules named here:

* The image is stored (and tagged) as well as exported, as Buildah 1.28 does; with
  BuildKit (``docker buildx build -o``) the exporter replaces the image store.
* An entry already in DEST that is in the way is replaced, never followed: a
  symlink in DEST pointing outside leaves the outside untouched (mode, owner,
  mtime and contents checked).
* Modes (setuid included), owners, symlinks, hard links and FIFOs are kept as root;
  ``-o -`` writes only the tar to stdout.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.build.imagetree import read_image
from tests.conftest import REPO, Pybuild

pytestmark = pytest.mark.sandbox

MAKE = ("FROM localhost/busybox AS build\n"
        "RUN mkdir -p /out/sub && echo artifact > /out/app && chown 12:34 /out/app "
        "&& chmod 4750 /out/app && ln -s app /out/link && ln /out/app /out/hard "
        "&& mkfifo /out/fifo && echo deep > /out/sub/deep && chmod 700 /out/sub\n"
        "FROM build\nLABEL final=yes\n")
OUT = {"out", "out/app", "out/link", "out/hard", "out/fifo", "out/sub", "out/sub/deep"}


def _context(tmp_path: Path, text: str = MAKE) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(text)
    return context


def _check_tree(dest: Path) -> None:
    dest = dest / "out"
    app = os.lstat(dest / "app")
    assert (dest / "app").read_text() == "artifact\n"
    assert stat.S_IMODE(app.st_mode) == 0o4750 and (app.st_uid, app.st_gid) == (12, 34)
    assert os.readlink(dest / "link") == "app"
    assert os.lstat(dest / "hard").st_ino == app.st_ino
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "sub").st_mode) == 0o700
    assert (dest / "sub" / "deep").read_text() == "deep\n"


@pytest.mark.parametrize("spelling", ["type=local,dest={}", "dest={},type=local", "{}"])
def test_output_local(spelling: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    dest = tmp_path / "out" / "nested"
    res = with_busybox("bud", "-t", "x", "-o", spelling.format(dest), _context(tmp_path))
    _check_tree(dest)
    image_id = res.stdout.split()[-1]
    config, tree = read_image(with_busybox.root, "localhost/x:latest")  # stored as well
    assert config["config"]["Labels"]["final"] == "yes" and OUT <= set(tree)
    assert len(image_id) == 64
    assert (dest / "bin" / "busybox").is_file()


def test_output_target_stage(tmp_path: Path, with_busybox: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch AS first\nCOPY a /first\n"
                                 "FROM scratch\nCOPY a /second\n")
    (context / "a").write_text("a")
    dest = tmp_path / "out"
    with_busybox("bud", "-q", "--target", "first", "--output", f"type=local,dest={dest}",
                 context)
    assert os.listdir(dest) == ["first"]


def test_output_never_writes_through_links(tmp_path: Path, with_busybox: Pybuild) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app").write_text("precious\n")
    os.chmod(outside, 0o750)
    os.utime(outside, (1_000_000, 1_000_000))
    before = os.stat(outside)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out").mkdir()
    os.symlink(outside, dest / "out" / "sub")  # a directory entry of the image, here a link
    os.symlink(outside / "app", dest / "out" / "app")  # a file entry, here a link
    os.symlink(outside, dest / "unrelated")  # not in the image: left alone
    with_busybox("bud", "-q", "-o", str(dest), _context(tmp_path))
    _check_tree(dest)
    assert (outside / "app").read_text() == "precious\n"
    after = os.stat(outside)
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == \
        (before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)
    assert sorted(os.listdir(outside)) == ["app"]
    assert os.readlink(dest / "unrelated") == str(outside)


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _check_tar(members: dict[str, tarfile.TarInfo]) -> None:
    assert OUT <= set(members) and "bin/busybox" in members
    app = members["out/app"]
    assert (app.mode, app.uid, app.gid, app.size) == (0o4750, 12, 34, len("artifact\n"))
    assert members["out/hard"].islnk() and members["out/hard"].linkname == "out/app"
    assert members["out/link"].issym() and members["out/link"].linkname == "app"
    assert members["out/fifo"].isfifo() and members["out/sub"].mode == 0o700


def test_output_tar_file(tmp_path: Path, with_busybox: Pybuild) -> None:
    dest = tmp_path / "rootfs.tar"
    with_busybox("bud", "-q", "-o", f"type=tar,dest={dest}", _context(tmp_path))
    _check_tar(_members(dest.read_bytes()))
    assert not list(tmp_path.glob(".rootfs.tar*"))


@pytest.mark.parametrize("spelling", ["-", "type=tar,dest=-"])
def test_output_tar_to_stdout(spelling: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "bud", "-t", "x", "-o", spelling,
         str(_context(tmp_path, MAKE.replace("&& chmod 700", "&& echo noise && chmod 700")))],
        capture_output=True, env=with_busybox.env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _check_tar(_members(proc.stdout))  # stdout is the tar alone
    assert b"noise" in proc.stderr  # RUN output went to stderr meanwhile
    read_image(with_busybox.root, "localhost/x:latest")


def test_output_from_scratch_needs_no_run(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("a")
    pybuild("bud", "-q", "-o", str(tmp_path / "out"), context)
    assert (tmp_path / "out" / "a").read_text() == "a"


def test_output_errors(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("a")
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    res = pybuild("bud", "-o", str(blocker / "below"), context, check=False)
    assert res.returncode == 125
    assert f"exporting the root file system to {blocker / 'below'}" in res.stderr


def test_output_is_written_by_every_build(tmp_path: Path, pybuild: Pybuild) -> None:
    """A rebuild with nothing changed still exports (no build is answered from the
    rebuild record when it has an output to write)."""
    context = _context(tmp_path, "FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("a")
    dest = tmp_path / "out"
    for _ in range(2):
        shutil.rmtree(dest, ignore_errors=True)
        pybuild("bud", "-q", "-o", str(dest), context)
        assert (dest / "a").read_text() == "a"


def test_output_for_several_platforms(tmp_path: Path, pybuild: Pybuild) -> None:
    """One directory per platform, named as BuildKit's local exporter names them."""
    context = _context(tmp_path, "FROM scratch\nARG TARGETARCH\nCOPY a /a-$TARGETARCH\n")
    (context / "a").write_text("a")
    dest = tmp_path / "out"
    pybuild("bud", "-q", "--platform", "linux/amd64,linux/arm64", "--manifest", "m",
            "-o", str(dest), context)
    assert sorted(os.listdir(dest)) == ["linux_amd64", "linux_arm64"]
    assert os.listdir(dest / "linux_arm64") == ["a-arm64"]
    res = pybuild("bud", "--platform", "linux/amd64,linux/arm64", "--manifest", "m",
                  "-o", f"type=tar,dest={tmp_path / 'x.tar'}", context, check=False)
    assert res.returncode == 125 and "a tar holds one platform's files" in res.stderr

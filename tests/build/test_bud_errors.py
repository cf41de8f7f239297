"""Bad input: a clear error, a non-zero exit, no tag and an unchanged store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pybuild


def _context(tmp_path: Path, containerfile: str, **files: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(containerfile)
    for name, text in files.items():
        (context / name).write_text(text)
    return context


def _seed(runner: Pybuild, tmp_path: Path) -> None:
    """Put one image (localhost/seed:latest, one layer) into the store."""
    seed = tmp_path / "seed"
    seed.mkdir()
    runner("bud", "-q", "-t", "seed", _context(seed, "FROM scratch\nCOPY a /\n", a="a"))


def store_hash(root: Path) -> str:
    """A digest of everything that names or holds image data in a store (not the
    layer cache's trust markers, which any use of the store may promote)."""
    h = hashlib.sha256()
    markers = root / "layers" / ".trust"
    for part in ("index.json", "blobs", "layers"):
        base = root / part
        paths = sorted(base.rglob("*")) if base.is_dir() else [base] if base.exists() else []
        for path in paths:
            if path == markers or markers in path.parents:
                continue
            h.update(str(path.relative_to(root)).encode())
            if path.is_file() and not path.is_symlink():
                h.update(path.read_bytes())
    return h.hexdigest()


def _names(root: Path) -> list[str]:
    import json

    index = root / "index.json"
    if not index.exists():
        return []
    return sorted(
        (d.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
        for d in json.loads(index.read_text())["manifests"]
    )


# (name, Containerfile, files, message substring, location "line:col" or None, extra flags)
CASES = [
    ("missing-source", "FROM scratch\nCOPY nope.txt /\n", {}, "no such file or directory",
     "2:1", ()),
    ("source-outside-context", "FROM scratch\nCOPY ../x /\n", {},
     "forbidden path outside the build context: ../x", "2:1", ()),
    ("glob-matches-nothing", "FROM scratch\nCOPY *.foo /d/\n", {}, "matched nothing", "2:1", ()),
    ("unknown-from-stage", "FROM scratch\nCOPY --from=nope /a /b\n", {},
     "COPY --from=nope: no stage or image found with that name", "2:1", ()),
    ("copy-from-itself", "FROM scratch AS build\nCOPY --from=build /a /b\n", {},
     "no stage or image found with that name", "2:1", ()),
    ("cyclic-stages", "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n"
     "COPY --from=a /y /y\n", {}, "circular dependency", None, ("--target", "b")),
    ("unknown-target", "FROM scratch AS a\n", {}, "target stage 'zzz' not found", None,
     ("--target", "zzz")),
    ("excluded-by-ignore-file", "FROM scratch\nCOPY secret.txt /\n",
     {"secret.txt": "s", ".dockerignore": "secret.txt\n"}, "filtered out using", "2:1", ()),
    ("bad-chown-name", "FROM scratch\nCOPY --chown=ghost a /\n", {"a": "a"},
     "can't find uid for user 'ghost'", "2:1", ()),
    ("bad-chmod", "FROM scratch\nCOPY --chmod=99z a /\n", {"a": "a"}, "invalid mode", "2:1", ()),
    ("bad-expose", "FROM scratch\nEXPOSE http\n", {}, "EXPOSE: invalid port", "2:1", ()),
    ("missing-base-image", "FROM localhost/does-not-exist:1\n", {},
     'pulling image "localhost/does-not-exist:1"', "1:1", ()),
    ("unset-variable-required", "FROM scratch\nENV X=\"${NOPE:?must be set}\"\n", {},
     "must be set", "2:", ()),
]


@pytest.mark.parametrize("name,containerfile,files,message,where,flags", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_containerfile(name: str, containerfile: str, files: dict[str, str], message: str,
                           where: str | None, flags: tuple[str, ...], tmp_path: Path,
                           pybuild: Pybuild) -> None:
    context = _context(tmp_path, containerfile, **files)
    _seed(pybuild, tmp_path)
    before = store_hash(pybuild.root)
    res = pybuild("bud", "-t", "broken", *flags, context, check=False)
    assert res.returncode == 125, res.output
    assert message in res.stderr
    if where is not None:
        assert f"Containerfile:{where}" in res.stderr
    assert store_hash(pybuild.root) == before
    assert _names(pybuild.root) == ["localhost/seed:latest"]


@pytest.mark.parametrize("flag", ["--build-arg==x", "--build-arg=has space=1",
                                  "--label=novalue", "--annotation=", "--platform=a/b/c/d"])
def test_malformed_flags_are_usage_errors(flag: str, tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\n")
    res = pybuild("bud", flag, context, check=False)
    assert res.returncode == 125
    assert res.stderr.startswith("Error: parsing")


def test_missing_context_and_containerfile(tmp_path: Path, pybuild: Pybuild) -> None:
    res = pybuild("bud", tmp_path / "nowhere", check=False)
    assert res.returncode == 125 and "no such directory" in res.stderr
    res = pybuild("bud", tmp_path, check=False)
    assert res.returncode == 125 and "no Containerfile or Dockerfile" in res.stderr


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_unwritable_store(tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY a /\n", a="a")
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as root:
        res = Pybuild(root)("bud", "-t", "x", context, check=False)
        assert res.returncode == 125
        assert "opening image store" in res.stderr and "not writable" in res.stderr
        assert list(root.iterdir()) == []


def test_full_disk_leaves_store_unchanged(tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY small /\nCOPY big /\n", small="s")
    (context / "big").write_bytes(os.urandom(3 << 20))  # random: does not compress
    with _tmpfs(tmp_path / "full", "size=1m") as root:
        runner = Pybuild(root)
        _seed(runner, tmp_path)
        before = store_hash(root)
        res = runner("bud", "-t", "big", context, check=False)
        assert res.returncode == 125, res.output
        assert "No space left on device" in res.stderr
        assert "Traceback" not in res.stderr
        assert store_hash(root) == before
        assert _names(root) == ["localhost/seed:latest"]


def test_default_containerfile_symlink_is_not_followed_out(tmp_path: Path,
                                                           pybuild: Pybuild) -> None:
    outside = tmp_path / "outside"
    outside.write_text("FROM scratch\nLABEL leaked=yes\n")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").symlink_to(outside)
    res = pybuild("bud", context, check=False)
    assert res.returncode == 125
    assert "not a regular file inside the context" in res.stderr


EXIT_STATUS = [
    # (case, Containerfile, status, stderr holds): Buildah exits 125 for every error
    # but a RUN's own failure, which gives the step's status (findings: Buildah 1.28)
    ("no FROM argument", "FROM\n", 125, "FROM requires either one or three arguments"),
    ("unknown instruction", "FROM scratch\nFOO bar\n", 125, "unknown instruction: FOO"),
    ("unterminated heredoc", "FROM scratch\nRUN <<EOF\necho hi\n", 125, "unterminated heredoc"),
    ("missing destination", "FROM scratch\nCOPY onlyone\n", 125, "COPY requires"),
    ("empty file", "", 125, "file with no instructions"),
    ("RUN exit 3", "FROM localhost/busybox\nRUN exit 3\n", 3, 'STEP "RUN exit 3": exit status 3'),
    ("RUN exec form", 'FROM localhost/busybox\nRUN ["sh", "-c", "exit 42"]\n', 42,
     "exit status 42"),
]


@pytest.mark.parametrize(("text", "status", "message"), [c[1:] for c in EXIT_STATUS],
                         ids=[c[0] for c in EXIT_STATUS])
def test_exit_status_as_buildah(with_busybox: Pybuild, tmp_path: Path, text: str, status: int,
                                message: str) -> None:
    (tmp_path / "Containerfile").write_text(text)
    result = with_busybox("bud", tmp_path, check=False)
    assert result.returncode == status, result.output
    assert message in result.stderr
    if status == 125 and text.startswith("FROM scratch"):
        assert f"{tmp_path / 'Containerfile'}:2:1" in result.stderr  # located, with a caret

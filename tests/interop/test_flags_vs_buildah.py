"""bud's flags give the image Buildah 1.28 gives: config and file tree, flag by flag.

Each case is one Containerfile (FROM scratch, so both builders see identical inputs)
built by both with the same flags. Intended differences, removed before comparing:

* The identity label: Buildah writes ``io.buildah.version``, pybuild its own
  ``io.pybuild.version`` (both are dropped, except in the ``--identity-label=false``
  case, where neither may be there). With ``--timestamp`` pybuild leaves it out, as
  Buildah 1.33 and later do; 1.28 adds it.
* History texts differ in wording (``/bin/sh -c #(nop) ...``); only their number, or
  their absence with ``--omit-history``, is compared; not with ``--label``, which
  Buildah turns into extra ``LABEL`` steps (each a history entry) and pybuild applies
  when it commits, for the same config.
* A git context by tag: Buildah 1.28 fetches the tag and then fails to check it out
  (``pathspec 'v1' did not match``); pybuild checks out what it fetched. The git
  comparison uses a branch.
* mtimes are not compared.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.build.conftest import Buildah, pybuild_image
from tests.build.remote_servers import Repo
from tests.conftest import Pybuild

pytestmark = pytest.mark.interop

IDENTITY = ("io.buildah.version", "io.pybuild.version")
COMPARED = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
            "Labels", "StopSignal")
BASE = ("FROM scratch\nENV A=1 B=2\nLABEL keep=yes\nCOPY d /app/d\n"
        "COPY --chown=12:34 --chmod=0750 f /app/f\nWORKDIR /app\nCMD [\"run\"]\n")
FILES = {"f": "file", "d/x": "xx", "d/y/z": "zzz"}

# case -> (Containerfile, flags)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "env-and-unsetenv": (BASE, ("--env", "C=$A-3", "--env", "B=two", "--unsetenv", "A")),
    "identity-label-false": (BASE, ("--identity-label=false",)),
    "omit-history": (BASE, ("--omit-history",)),
    "os-version-and-feature": (BASE, ("--os-version", "10.0.1", "--os-feature", "a",
                                      "--os-feature", "b", "--os-feature", "a-")),
    "os-arch-variant": (BASE, ("--os", "linux", "--arch", "arm64", "--variant", "v8")),
    "platform": (BASE, ("--platform", "linux/arm/v7")),
    "from": ("FROM docker.io/library/nonexistent AS a\nCOPY f /f\nFROM a\nENV X=1\n",
             ("--from", "scratch")),
    "skip-unused-stages-false": (
        "FROM scratch AS other\nCOPY d /d\nFROM scratch AS target\nCOPY f /f\n",
        ("--skip-unused-stages=false",)),
    "compat-no-ops": (BASE, ("--layers", "--rm", "--force-rm", "--compress",
                             "--disable-content-trust")),
    "label-and-annotation": (BASE, ("--label", "keep=no", "--label", "new=1")),
    "cpp": ('#include "base.in"\n#ifdef EXTRA\nLABEL extra=yes\n#endif\n',
            ("-f", "Containerfile.in", "--cpp-flag=-DEXTRA")),
}


def _config(config: dict[str, Any], strip_identity: bool) -> dict[str, Any]:
    body = dict(config.get("config") or {})
    labels = dict(body.get("Labels") or {})
    if strip_identity:
        labels = {k: v for k, v in labels.items() if k not in IDENTITY}
    body["Labels"] = labels or None
    out = {key: body.get(key) or None for key in COMPARED}
    for key in ("os", "architecture", "variant", "os.version", "os.features"):
        out[key] = config.get(key)
    out["history"] = len(config["history"]) if "history" in config else None
    return out


def _context(tmp_path: Path, containerfile: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    (context / "Containerfile.in").write_text(containerfile)
    (context / "base.in").write_text(BASE)
    for name, text in FILES.items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(text)
    return context


@pytest.mark.parametrize("case", sorted(CASES))
def test_flags_match_buildah(case: str, tmp_path: Path, pybuild: Pybuild,
                             buildah: Buildah) -> None:
    containerfile, flags = CASES[case]
    context = _context(tmp_path, containerfile)
    ours = pybuild_image(pybuild, context, *flags)
    theirs = buildah.build(context, *flags)
    strip = "--identity-label=false" not in flags
    ours_config, their_config = _config(ours[0], strip), _config(theirs[0], strip)
    if "--label" in flags:
        ours_config.pop("history")
        their_config.pop("history")
    assert ours_config == their_config
    assert ours[1] == theirs[1]


def test_identity_labels(tmp_path: Path, pybuild: Pybuild, buildah: Buildah) -> None:
    """Each builder signs with its own identity label by default."""
    context = _context(tmp_path, BASE)
    assert "io.pybuild.version" in pybuild_image(pybuild, context)[0]["config"]["Labels"]
    assert "io.buildah.version" in buildah.build(context)[0]["config"]["Labels"]


def _walk(root: Path) -> dict[str, tuple[str, int, int, int, int, str]]:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            st = path.lstat()
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) \
                else "file"
            found[str(path.relative_to(root))] = (
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                st.st_size if kind == "file" else 0,
                os.readlink(path) if kind == "link" else "")
    return found


@pytest.mark.parametrize("spec", ["type=local,dest={}", "{}"])
def test_output_matches_buildah(spec: str, tmp_path: Path, pybuild: Pybuild,
                                buildah: Buildah) -> None:
    context = _context(tmp_path, BASE + "COPY --chown=5:6 d /other/\n")
    os.symlink("app/f", context / "d" / "link")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    pybuild_image(pybuild, context, "--output", spec.format(ours))
    buildah.build(context, "--output", spec.format(theirs))
    assert _walk(ours) == _walk(theirs)
    assert _walk(ours)["app/f"][1:4] == (0o750, 12, 34)


def test_named_contexts_match_buildah(tmp_path: Path, pybuild: Pybuild,
                                      buildah: Buildah) -> None:
    base = _context(tmp_path, "FROM scratch\nCOPY f /from-base\nLABEL base=1\n")
    pybuild("bud", "-q", "-t", "ctxbase", base)
    buildah.load(pybuild.root, "localhost/ctxbase:latest")
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "file").write_text("extra")
    other = tmp_path / "other"
    other.mkdir()
    (other / "Containerfile").write_text(
        "FROM img\nCOPY --from=extra sub /sub\nCOPY --from=img /from-base /copied\n")
    flags = ("--build-context", f"extra={extra}",
             "--build-context", "img=docker-image://localhost/ctxbase:latest")
    ours = pybuild_image(pybuild, other, *flags)
    theirs = buildah.build(other, *flags)
    assert _config(ours[0], True) == _config(theirs[0], True)
    assert ours[1] == theirs[1]


def test_git_and_tarball_contexts_match_buildah(
        tmp_path: Path, pybuild: Pybuild, buildah: Buildah, git_http: tuple[str, Repo],
        file_server: tuple[str, Path]) -> None:
    import io
    import tarfile

    base, repo = git_http
    url = f"{base}/{repo.name}#main:app"
    ours = pybuild_image(pybuild, url)  # type: ignore[arg-type]
    theirs = buildah.build(url)  # type: ignore[arg-type]
    assert ours[1] == theirs[1] and ours[1]["version"][4] == len("two\n")
    files, root = file_server
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in {"Containerfile": BASE, **FILES}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text), 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
    (root / "ctx.tar.gz").write_bytes(raw.getvalue())
    ours = pybuild_image(pybuild, f"{files}/ctx.tar.gz")  # type: ignore[arg-type]
    theirs = buildah.build(f"{files}/ctx.tar.gz")  # type: ignore[arg-type]
    assert _config(ours[0], True) == _config(theirs[0], True)
    assert ours[1] == theirs[1]

"""SIGINT and SIGTERM during long operations: exit 130/143, no temporary files,
no tag, and a store `check` passes without any cleanup."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Pybuild

BIG = 96 * 1024 * 1024
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store with localhost/big holding ~100 MB, a context of the same files)."""
    base = tmp_path_factory.mktemp("big")
    ctx = base / "ctx"
    (ctx / "files").mkdir(parents=True)
    for i in range(12):
        (ctx / "files" / f"f{i}").write_bytes(os.urandom(BIG // 12))
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY files /files\n")
    Pybuild(base / "store")("bud", "-q", "--compression", "none", "-t", "big", ctx)
    return base / "store", ctx


def _temp_files(root: Path) -> list[str]:
    """Anything in tmp/ or workspaces/, and temporary names where blobs, the index
    and extracted layers are written."""
    found = []
    for sub in ("tmp", "workspaces"):
        if (root / sub).exists():
            found.extend(f"{sub}/{n}" for n in os.listdir(root / sub))
    for sub in (".", "blobs/sha256", "layers"):
        if (root / sub).exists():
            found.extend(f"{sub}/{n}" for n in os.listdir(root / sub) if n.startswith(".tmp-"))
    return found


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(args: list[str], env: dict[str, str], sig: signal.Signals,
               started: Callable[[], bool]) -> subprocess.CompletedProcess[str]:
    # SIGINT as a terminal delivers it: a shell starts background jobs with SIGINT ignored
    # (and so may the test run itself), which pybuild rightly keeps
    proc = subprocess.Popen([sys.executable, "-m", "builder", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail(f"pybuild {' '.join(args)} ended before it could be interrupted")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_interrupted_push(big: tuple[Path, Path], pybuild: Pybuild, tmp_path: Path,
                          sig: signal.Signals, transport: str) -> None:
    shutil.copytree(big[0], pybuild.root, ignore=shutil.ignore_patterns("tmp"))
    out = tmp_path / "out"
    out.mkdir()
    res = _interrupt(["push", "big", f"{transport}:{out}/big.tar"], pybuild.env, sig,
                     lambda: any(n.startswith(".tmp-") for n in os.listdir(out)))
    assert res.returncode == EXIT[sig], res.stderr
    assert os.listdir(out) == []
    assert _temp_files(pybuild.root) == []
    assert pybuild("check").returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_interrupted_bud(big: tuple[Path, Path], pybuild: Pybuild,
                         sig: signal.Signals) -> None:
    root = pybuild.root

    def copying() -> bool:  # a layer being written, not the parse cache's quick temp file
        tmp = root / "tmp"
        return tmp.exists() and any(
            not name.startswith("parsed-") for d in os.listdir(tmp) for name in os.listdir(tmp / d)
        )

    res = _interrupt(["bud", "-t", "interrupted", str(big[1])], pybuild.env, sig, copying)
    assert res.returncode == EXIT[sig], res.stderr
    assert _temp_files(root) == []
    assert pybuild("images", "-q").stdout.strip() == ""
    assert pybuild("check").returncode == 0

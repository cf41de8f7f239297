"""Containerfile.examples/ci/build.sh, run as a CI job would run it, on two "runners"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "Containerfile.examples" / "ci" / "build.sh"


def _job(store: Path, registry_host: str, context: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYBUILD_ROOT": str(store), "REGISTRY": f"{registry_host}/ci",
           "CI_COMMIT_SHA": "abc123",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["sh", str(SCRIPT), str(context)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_second_runner_hits_the_shared_cache(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    context = tmp_path / "app"
    context.mkdir()
    (context / "app.txt").write_text("hello\n")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY app.txt /app/app.txt\nLABEL job=ci\nCMD [\"/app/app.txt\"]\n"
    )
    first = _job(tmp_path / "runner-a", registry.host, context)
    assert first.returncode == 0, first.stdout + first.stderr
    second = _job(tmp_path / "runner-b", registry.host, context)
    assert second.returncode == 0, second.stdout + second.stderr
    copy_step = second.stdout.split("COPY app.txt /app/app.txt", 1)[1]
    assert copy_step.lstrip().startswith("--> Using cache"), second.stdout
    pulled = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/ci/app:abc123"],
        capture_output=True, text=True,
    )
    assert pulled.returncode == 0, pulled.stderr

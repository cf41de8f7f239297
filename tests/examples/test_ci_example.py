"""Containerfile.examples/ci/build.sh, run as a CI job would run it, on two "runners"."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, Pybuild, lane_runner

SCRIPT = REPO / "Containerfile.examples" / "ci" / "build.sh"


def _job(runner: Pybuild, registry_host: str, context: Path) -> subprocess.CompletedProcess[str]:
    env = {**runner.env, "REGISTRY": f"{registry_host}/ci", "CI_COMMIT_SHA": "abc123",
           "PATH": f"{runner.bin_dir()}{os.pathsep}{os.environ['PATH']}"}
    script = context.parent / SCRIPT.name  # where the lane's user can read it
    shutil.copy(SCRIPT, script)
    return subprocess.run(runner.command("sh", str(script), str(context)), env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.rootless
def test_second_runner_hits_the_shared_cache(tmp_path: Path, registry, lane: str,  # type: ignore[no-untyped-def]
                                             request: pytest.FixtureRequest) -> None:
    context = tmp_path / "app"
    context.mkdir()
    (context / "app.txt").write_text("hello\n")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY app.txt /app/app.txt\nLABEL job=ci\nCMD [\"/app/app.txt\"]\n"
    )
    runners = []
    for name in ("runner-a", "runner-b"):
        (tmp_path / name).mkdir()
        runners.append(lane_runner(lane, tmp_path / name, request))
    first = _job(runners[0], registry.host, context)
    assert first.returncode == 0, first.stdout + first.stderr
    second = _job(runners[1], registry.host, context)
    assert second.returncode == 0, second.stdout + second.stderr
    copy_step = second.stdout.split("COPY app.txt /app/app.txt", 1)[1]
    assert copy_step.lstrip().startswith("--> Using cache"), second.stdout
    pulled = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/ci/app:abc123"],
        capture_output=True, text=True,
    )
    assert pulled.returncode == 0, pulled.stderr

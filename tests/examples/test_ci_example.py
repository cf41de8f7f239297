"""Containerfile.examples/ci/build.sh, run as a CI job would run it: on two "runners"
sharing a registry cache, and on the example's own Containerfile with ARTIFACTS set,
where ``bud --output`` extracts what the job keeps."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, Pybuild, copy_store, lane_runner

SCRIPT = REPO / "Containerfile.examples" / "ci" / "build.sh"


def _job(runner: Pybuild, registry_host: str, context: Path,
         **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**runner.env, "REGISTRY": f"{registry_host}/ci", "CI_COMMIT_SHA": "abc123",
           "PATH": f"{runner.bin_dir()}{os.pathsep}{os.environ['PATH']}", **extra}
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


@pytest.mark.sandbox
def test_job_extracts_artifacts_with_output(tmp_path: Path, registry,  # type: ignore[no-untyped-def]
                                            busybox_store: Path) -> None:
    context = tmp_path / "ci"
    shutil.copytree(EXAMPLES / "ci", context)
    runner = copy_store(busybox_store, Pybuild(tmp_path / "runner"))
    store = runner.root
    artifacts = tmp_path / "artifacts"
    job = _job(runner, registry.host, context, ARTIFACTS=str(artifacts))
    assert job.returncode == 0, job.stdout + job.stderr
    assert (artifacts / "test-report.txt").read_text() == "selftest: 1 passed\n"
    assert stat.S_IMODE((artifacts / "app").stat().st_mode) == 0o755
    assert sorted(p.name for p in artifacts.iterdir()) == ["app", "test-report.txt"]
    shipped = Pybuild(store)("run", f"{registry.host}/ci/app:abc123", check=False)
    assert shipped.stdout == "hello, world\n", shipped.output

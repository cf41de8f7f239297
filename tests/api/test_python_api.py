"""The Python API: the documented example runs verbatim; exports; handles and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import builder
from builder.errors import StepError
from tests.build.imagetree import read_image
from tests.conftest import REPO, Pybuild

EXAMPLE = REPO / "Containerfile.examples" / "api_example.py"


def test_exported_names() -> None:
    import builder.api

    assert builder.__all__ == sorted(builder.__all__) == builder.api.__all__
    assert all(getattr(builder, name) is getattr(builder.api, name) for name in builder.__all__)
    code = "import builder, sys; print('builder.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # import builder stays cheap


@pytest.mark.rootless
def test_example_runs(bb: Pybuild, registry: object, tmp_path: Path) -> None:
    env = {**bb.env, "REGISTRY": registry.host}  # type: ignore[attr-defined]
    example = tmp_path / EXAMPLE.name  # where the lane's user can read it
    shutil.copy(EXAMPLE, example)
    proc = subprocess.run(bb.python(str(example)), env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert set(lines) == {"committed", "built", "pushed", "pulled"}
    assert lines["pulled"] == lines["committed"]
    assert bb("run", "api-example").stdout == "hello from the API\n"
    assert bb("run", "api-built").stdout == "hello from the API\n"
    scripted, scripted_tree = read_image(bb.root, "localhost/api-example:latest")
    built, built_tree = read_image(bb.root, "localhost/api-built:latest")
    assert scripted["config"] == built["config"]
    assert scripted_tree == built_tree
    assert json.loads(bb("containers", "--json").stdout) == []


def test_handles_see_cli_containers(bb: Pybuild) -> None:
    name = bb("from", "busybox").stdout.strip()
    session = builder.Session(bb.root)
    ctr = session.container(name)
    assert [c.name for c in session.containers()] == [name]
    with pytest.raises(StepError) as failed:
        ctr.run(["sh", "-c", "exit 3"])
    assert failed.value.status == 3
    assert ctr.run(["false"], check=False) == 1
    root = ctr.mount()
    assert (root / "bin" / "sh").exists()
    ctr.unmount()
    ctr.remove()
    assert session.containers() == []


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive"])
def test_pull_verifies_local_transports(tmp_path, transport: str) -> None:
    """Session.pull imports oci:, oci-archive: and docker-archive: through the verifying
    import: a good image is stored, a corrupt one refused with nothing stored."""
    from builder.errors import VerificationError
    from tests.reliability.corrupt_images import (
        corrupt,
        good_layer,
        write_docker_archive,
        write_layout,
        write_oci_archive,
    )

    def ref(layer: object, name: str) -> str:
        base = tmp_path / name
        if transport == "oci":
            return f"oci:{write_layout(base, 't', layer)}:t"  # type: ignore[arg-type]
        if transport == "oci-archive":
            return f"oci-archive:{write_oci_archive(base, 't', layer)}:t"  # type: ignore[arg-type]
        return f"docker-archive:{write_docker_archive(base, 't:1', layer)}"  # type: ignore[arg-type]

    session = builder.Session(tmp_path / "store")
    with pytest.raises(VerificationError) as refused:
        session.pull(ref(corrupt("diff-id-mismatch"), "bad"))
    assert refused.value.problem == "diff_id"
    assert session.store.images() == []
    image_id = session.pull(ref(good_layer(), "good"))
    assert [record.id for record in session.store.images()] == [image_id]


def test_run_settings_of_builds_and_containers(bb: Pybuild, tmp_path: Path) -> None:
    """RunSettings carries RUN's resource and security flags through the API as through
    the CLI: a build's, a container's (from_image), and one run's (added to those)."""
    from builder.runsettings import Ulimit, Volume

    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "in").write_text("from the host\n")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(
        "FROM localhost/busybox\nRUN cat /v/in > /seen; ulimit -n >> /seen; "
        "grep CapBnd /proc/self/status >> /seen\n")
    session = builder.Session(bb.root)
    settings = builder.RunSettings(volumes=(Volume.parse(f"{volume}:/v:ro"),),
                                   ulimits=(Ulimit.parse("nofile=77"),), cap_drop=("ALL",))
    session.build(builder.BuildRequest(context=context, tags=("api-settings",),
                                       settings=settings))
    ctr = session.from_image("localhost/api-settings",
                             builder.FromOptions(settings=builder.RunSettings(
                                 ulimits=(Ulimit.parse("nofile=55"),))))
    ctr.run(["sh", "-c", "cp /seen /seen-build; cat /w/in > /run-saw; ulimit -n >> /run-saw"],
            builder.RunOptions(volumes=(f"{volume}:/w",)))
    root = ctr.mount()
    try:
        assert (root / "seen-build").read_text() == \
            "from the host\n77\nCapBnd:\t0000000000000000\n"
        assert (root / "run-saw").read_text() == "from the host\n55\n"
        assert not (root / "v").exists() and not (root / "w").exists()
    finally:
        ctr.unmount()
        ctr.remove()

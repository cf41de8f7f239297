"""Podman reads pybuild's images: ``podman load`` of a docker-archive and ``podman pull``
of an OCI layout give the same image, with pybuild's config and layers.

``podman run`` cannot start any container on some machines: runc fails to set the
container's rlimits (``error setting rlimit type 7``, RLIMIT_NOFILE, and type 6,
RLIMIT_NPROC, when nofile is given with ``--ulimit``), whatever the image. The run test
skips on exactly that error and fails on any other.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.cli import VERSION
from tests.conftest import Pybuild

pytestmark = [pytest.mark.interop, pytest.mark.sandbox]

RLIMIT_ERROR = "error setting rlimits for ready process: error setting rlimit type"

CONTAINERFILE = """\
FROM localhost/busybox
ENV GREETING="hello podman" APP=/srv/app
LABEL org.example.case=podman
WORKDIR /srv/app
RUN echo "$GREETING" > greeting.txt
USER nobody
EXPOSE 8080/tcp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/app/greeting.txt"]
"""


class Podman:
    """The system's podman with a private vfs store."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.flags = ["--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *self.flags, *args], capture_output=True, text=True,
                              timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr}")
        return proc

    def inspect(self, ref: str) -> dict:
        (image,) = json.loads(self("image", "inspect", ref).stdout)
        return image


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    runroot = Path(tempfile.mkdtemp(prefix="podman-"))  # podman wants it under 50 characters
    try:
        yield Podman(tmp_path / "podman", runroot)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture
def image(tmp_path: Path, with_busybox: Pybuild) -> dict[str, Path | str]:
    """The test image built by pybuild, exported as a docker-archive and an OCI layout."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    with_busybox("bud", "-q", "-t", "localhost/podcase:1", context)
    archive, layout = tmp_path / "podcase.tar", tmp_path / "layout"
    with_busybox("push", "localhost/podcase:1", f"docker-archive:{archive}:localhost/podcase:1")
    with_busybox("push", "localhost/podcase:1", f"oci:{layout}:1")
    inspected = json.loads(with_busybox("inspect", "--type", "image", "localhost/podcase:1").stdout)
    return {"archive": archive, "layout": layout, "id": inspected["FromImageID"]}


def test_podman_load_and_pull_show_pybuilds_config(podman: Podman,
                                                   image: dict[str, Path | str]) -> None:
    loaded = podman("load", "-i", str(image["archive"]))
    assert "localhost/podcase:1" in loaded.stdout
    podman("pull", "-q", f"oci:{image['layout']}:1")
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert f"localhost/podcase:1 {str(image['id'])[:12]}" in listed
    inspected = podman.inspect("localhost/podcase:1")
    assert inspected["Id"].removeprefix("sha256:") == image["id"]
    config = inspected["Config"]
    assert config["Cmd"] == ["cat /srv/app/greeting.txt"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert "GREETING=hello podman" in config["Env"] and "APP=/srv/app" in config["Env"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody"
    assert config["Labels"] == {"org.example.case": "podman", "io.pybuild.version": VERSION}
    assert "8080/tcp" in config["ExposedPorts"]
    assert len(inspected["RootFS"]["Layers"]) == 5  # busybox's three, WORKDIR, RUN


def test_podman_runs_pybuild_image(podman: Podman, image: dict[str, Path | str]) -> None:
    podman("load", "-i", str(image["archive"]))
    run = podman("run", "--rm", "--network", "none", "localhost/podcase:1", check=False)
    if run.returncode != 0 and RLIMIT_ERROR in run.stderr:
        pytest.skip(f"podman cannot start containers on this machine: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello podman\n"

"""Working containers across processes, the scripted build, config edits, mount, rm."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.cli import VERSION
from builder.store import Store
from builder.store.containers import ConfigChanges, apply_config, create_container, find_container
from tests.build.imagetree import read_image
from tests.conftest import REPO, Pybuild
from tests.containers.support import shell_env

pytestmark = pytest.mark.rootless  # also run by the rootless lane

SCRIPTED = REPO / "Containerfile.examples" / "scripted"


def shim(pybuild: Pybuild, *args: str) -> subprocess.CompletedProcess[str]:
    env = shell_env(pybuild)
    return subprocess.run([*env["PYBUILD"].split(), *args], env=env, capture_output=True,
                          text=True, check=True)


def test_scripted_build_matches_containerfile(bb: Pybuild) -> None:
    bb("bud", "-q", "-t", "from-file:1", SCRIPTED)
    subprocess.run(["sh", str(SCRIPTED / "build.sh"), "from-script:1"], env=shell_env(bb),
                   check=True, capture_output=True, text=True)
    file_config, file_tree = read_image(bb.root, "localhost/from-file:1")
    script_config, script_tree = read_image(bb.root, "localhost/from-script:1")
    assert script_config["config"] == file_config["config"]
    for key in ("architecture", "os"):
        assert script_config[key] == file_config[key]
    assert script_tree == file_tree
    assert script_tree["etc/app/config.txt"][1] == 0o600
    assert file_config["config"]["User"] == "nobody"
    assert bb("containers", "-q").stdout == ""  # the script's trap removed its container
    out = bb("run", "from-script:1").stdout
    assert out.strip() == "hello from /app: --serve"


def test_container_lives_across_processes(bb: Pybuild, tmp_path: Path) -> None:
    name = bb("from", "busybox").stdout.strip()
    assert name == "busybox-working-container"
    (tmp_path / "in.txt").write_text("copied\n")
    bb("copy", "--chown", "nobody", name, tmp_path / "in.txt", "/data/")
    shim(bb, "run", name, "--", "sh", "-c", "cat /data/in.txt > /data/out.txt")
    out = shim(bb, "run", "-e", "X=from-env", name, "--", "sh", "-c",
               "cat /data/out.txt; echo $X; stat -c %U /data/in.txt").stdout
    assert out.split() == ["copied", "from-env", "nobody"]
    bb("config", "--cmd", "cat /data/out.txt", "--label", "stage=two", name)
    image_id = bb("commit", "--rm", name, "result:1").stdout.strip()
    assert len(image_id) == 64
    assert bb("run", "result:1").stdout == "copied\n"
    config, tree = read_image(bb.root, "localhost/result:1")
    assert config["config"]["Labels"] == {"stage": "two", "io.pybuild.version": VERSION}
    assert tree["data/in.txt"][2:4] == (65534, 65534)
    assert len(config["rootfs"]["diff_ids"]) == 4  # busybox's three layers plus one
    assert bb("containers", "-q").stdout == ""


def test_names_list_inspect_rename_rm(bb: Pybuild) -> None:
    assert bb("from", "busybox").stdout.strip() == "busybox-working-container"
    assert bb("from", "busybox").stdout.strip() == "busybox-working-container-1"
    assert bb("from", "scratch").stdout.strip() == "working-container"
    taken = bb("from", "--name", "working-container", "scratch", check=False)
    assert taken.returncode == 125 and "already in use" in taken.stderr
    table = bb("containers").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "BUILDER", "IMAGE", "ID", "IMAGE", "NAME",
                                "CONTAINER", "NAME"]
    assert [line.split()[-1] for line in table[1:]] == [
        "busybox-working-container", "busybox-working-container-1", "working-container"]
    bb("rename", "busybox-working-container-1", "second")
    listed = json.loads(bb("containers", "--json").stdout)
    assert [c["containername"] for c in listed][1] == "second"
    assert listed[0]["imagename"] == "localhost/busybox:latest"
    data = json.loads(bb("inspect", "--type", "container", "second").stdout)
    assert data["Container"] == "second" and data["Config"]["Cmd"] == ["/bin/sh"]
    assert bb("rm", "second").stdout.strip() == listed[1]["id"]
    missing = bb("rm", "second", check=False)
    assert missing.returncode == 125 and "no such working container" in missing.stderr
    bb("rm", "--all")
    assert json.loads(bb("containers", "--json").stdout) == []


def test_mount_stays_until_umount(bb: Pybuild) -> None:
    name = bb("from", "busybox").stdout.strip()
    if bb.lane == "rootless":  # the mount lives in a user namespace: Buildah's rule
        refused = bb("mount", name, check=False)
        assert refused.returncode == 125 and "'pybuild unshare' session" in refused.stderr
        pybuild = " ".join(bb.argv()[bb.argv().index("env"):])  # as the user runs it
        out = bb("unshare", "sh", "-c", f'root=$({pybuild} mount {name}) && echo "$root" && '
                 f'test -x "$root/bin/busybox" && printf x > "$root/made-outside" && '
                 f'{pybuild} umount {name} && ! mountpoint -q "$root"').stdout
        root = Path(out.strip())
    else:
        root = Path(bb("mount", name).stdout.strip())
        assert (root / "bin" / "busybox").exists()
        (root / "made-outside").write_text("x")
    bb("umount", name)
    if bb("inspect", "--type", "container", name).stdout.count('"overlay"'):
        assert not os.path.ismount(root)
    assert shim(bb, "run", name, "--", "cat", "/made-outside").stdout == "x"
    bb("commit", "--squash", name, "squashed")
    config, tree = read_image(bb.root, "localhost/squashed:latest")
    assert len(config["rootfs"]["diff_ids"]) == 1
    assert "made-outside" in tree and "bin/busybox" in tree


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_deletions_become_whiteouts(bb: Pybuild, driver: str) -> None:
    bb.env["PYBUILD_STORAGE_DRIVER"] = driver
    name = bb("--storage-driver", driver, "from", "busybox").stdout.strip()
    shim(bb, "--storage-driver", driver, "run", name, "--", "sh", "-c",
         "rm /bin/vi && echo new > /new")
    bb("--storage-driver", driver, "commit", name, "deleted")
    _, tree = read_image(bb.root, "localhost/deleted:latest")
    assert "bin/vi" not in tree and "new" in tree and "bin/ls" in tree


def test_copy_from_image_and_container_and_add_archive(bb: Pybuild, tmp_path: Path) -> None:
    first = bb("from", "--name", "first", "scratch").stdout.strip()
    bb("copy", "--from", "busybox", first, "/bin/busybox", "/bb")
    bb("config", "--entrypoint", '["/bb"]', first)
    second = bb("from", "--name", "second", "scratch").stdout.strip()
    bb("copy", "--from", first, second, "/bb", "/bin/busybox")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a")
    with tarfile.open(tmp_path / "t.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "files", arcname="files")
    bb("add", "--contextdir", tmp_path, second, "t.tar.gz", "/unpacked/")
    bb("commit", second, "copied")
    _, tree = read_image(bb.root, "localhost/copied:latest")
    assert tree["bin/busybox"][0] == "file" and tree["unpacked/files/a.txt"][4] == 1


@pytest.mark.parametrize(("changes", "field", "expected"), [
    (ConfigChanges(cmd="echo hi there"), "Cmd", ["echo", "hi", "there"]),
    (ConfigChanges(cmd='["a", "b c"]'), "Cmd", ["a", "b c"]),
    (ConfigChanges(cmd=""), "Cmd", None),
    (ConfigChanges(entrypoint="run it"), "Entrypoint", ["/bin/sh", "-c", "run it"]),
    (ConfigChanges(entrypoint='["/x"]'), "Entrypoint", ["/x"]),
    (ConfigChanges(shell='["/bin/bash", "-c"]', entrypoint="go"), "Entrypoint",
     ["/bin/bash", "-c", "go"]),
    (ConfigChanges(env=("A=1", "B=2", "A=3")), "Env",
     ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=3", "B=2"]),
    (ConfigChanges(env=("PATH-",)), "Env", None),
    (ConfigChanges(labels=("a=1", "b=2", "a-")), "Labels", {"b": "2"}),
    (ConfigChanges(ports=("80", "53/udp", "80-")), "ExposedPorts", {"53/udp": {}}),
    (ConfigChanges(volumes=("/v", "/w", "/v-")), "Volumes", {"/w": {}}),
    (ConfigChanges(workingdir="/srv"), "WorkingDir", "/srv"),
    (ConfigChanges(user="1000:1000"), "User", "1000:1000"),
    (ConfigChanges(stop_signal="SIGTERM"), "StopSignal", "SIGTERM"),
    (ConfigChanges(healthcheck="CMD-SHELL curl -f localhost", healthcheck_interval="30s",
                   healthcheck_retries=3), "Healthcheck",
     {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30_000_000_000, "Retries": 3}),
    (ConfigChanges(healthcheck='CMD ["true"]'), "Healthcheck", {"Test": ["CMD", "true"]}),
    (ConfigChanges(healthcheck="NONE"), "Healthcheck", {"Test": ["NONE"]}),
])
def test_config_changes(tmp_path: Path, changes: ConfigChanges, field: str,
                        expected: object) -> None:
    store = Store(tmp_path / "store")
    container = create_container(store, "scratch")
    apply_config(container, changes)
    config = json.loads(container.config.to_json("docker"))["config"]
    assert config.get(field) == expected


def test_config_annotations_author_created_by_reach_the_image(bb: Pybuild) -> None:
    name = bb("from", "scratch").stdout.strip()
    bb("config", "--annotation", "org.example=yes", "--author", "me",
       "--created-by", "made by hand", name)
    assert find_container(Store(bb.root), name).created_by == "made by hand"
    bb("commit", "--format", "docker", name, "annotated")
    data = json.loads(bb("inspect", "annotated").stdout)
    assert data["OCIv1"]["author"] == "me"
    assert data["History"][-1]["created_by"] == "made by hand"
    assert data["History"][-1]["empty_layer"] is True
    assert data["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    bb("commit", name, "annotated-oci")
    manifest = json.loads(bb("inspect", "annotated-oci").stdout)["Manifest"]
    assert manifest["annotations"] == {"org.example": "yes"}


def test_bad_input_is_a_usage_error(bb: Pybuild) -> None:
    bad = bb("config", "--port", "http", bb("from", "scratch").stdout.strip(), check=False)
    assert bad.returncode == 125 and "configuring container" in bad.stderr
    assert "no such working container" in bb("commit", "nope", check=False).stderr
    assert "bad name" not in bb("from", "--name", "a b", "scratch", check=False).stderr

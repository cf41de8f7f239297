"""RUN's resource and security flags against Buildah 1.28: the same Containerfile and
flags, built by both FROM the same busybox image, must print the same thing in the RUN
step (and, for volumes, give the same file tree).

Buildah runs with ``--storage-driver vfs`` and ``--isolation chroot``, or for the cgroup
limits and ``--shm-size`` (which Buildah's chroot isolation ignores: it shares the
host's cgroups and /dev) with ``--isolation oci --runtime runc``; pybuild with its
defaults (chroot). Differences named here:

* ``--security-opt no-new-privileges``: Buildah 1.28 refuses it; pybuild sets
  no_new_privs, as later Buildah does.
* ``-v``: Buildah leaves the (empty) mount point it made in the layer, pybuild leaves
  nothing; the trees are compared without it.
* ``--pid``/``--ipc``/``--uts``/``--cgroupns``: Buildah's chroot isolation cannot
  create or join those namespaces (it shares the host's, except UTS); pybuild's
  does, so there is nothing to compare.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.build.conftest import Buildah, run_buildah
from tests.build.imagetree import read_image
from tests.conftest import Pybuild

pytestmark = [pytest.mark.interop, pytest.mark.sandbox]
RUNC = shutil.which("runc")
BLOCK_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 1}]}


@pytest.fixture(scope="module")
def loaded(buildah: Buildah, busybox_store: Path) -> Buildah:  # noqa: F811 - the fixture
    buildah.load(busybox_store, "localhost/busybox:latest")
    return buildah


def _context(tmp_path: Path, script: str, user: str = "") -> Path:
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    user_line = f"USER {user}\n" if user else ""
    (context / "Containerfile").write_text(f"FROM localhost/busybox\n{user_line}RUN {script}\n")
    return context


def _step_output(stdout: str) -> list[str]:
    lines = stdout.split("COMMIT")[0].splitlines()
    return [line for line in lines if not line.startswith("STEP ")]


def theirs(buildah: Buildah, context: Path, *flags: str, isolation: str = "chroot",
           tag: str = "") -> subprocess.CompletedProcess[str]:
    runtime = ["--runtime", RUNC] if isolation == "oci" and RUNC else []
    tagged = ["-t", tag] if tag else []
    return run_buildah(["buildah", *buildah.flags, "bud", "--isolation", isolation,
                        *runtime, *tagged, *flags, str(context)],
                       env={**os.environ, "BUILDAH_FORMAT": "oci"})


def ours(pybuild: Pybuild, context: Path, *flags: str):
    # a step with id maps needs an idmappable root: the vfs driver's (an overlay is not)
    driver = ("--storage-driver", "vfs") if any("map" in f for f in flags) else ()
    return pybuild(*driver, "bud", "-t", "res:1", *flags, context)


# case -> (flags, script, user, Buildah's isolation); "{profile}" blocks mkdir, "{vol}" is a
# directory holding "in"
CASES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "cap-add-and-drop": (("--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN"),
                         "grep Cap /proc/self/status", "", "chroot"),
    "cap-drop-all-add-one": (("--cap-drop", "all", "--cap-add", "kill"),
                             "grep Cap /proc/self/status", "", "chroot"),
    "caps-of-another-user": (("--cap-add", "SYS_ADMIN"), "grep Cap /proc/self/status",
                             "nobody", "chroot"),
    "ulimit": (("--ulimit", "nofile=512:1024", "--ulimit", "nproc=300:400"),
               "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu", "", "chroot"),
    "seccomp-default": ((), "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status", "",
                        "chroot"),
    "seccomp-unconfined": (("--security-opt", "seccomp=unconfined"),
                           "grep -E '^Seccomp:' /proc/self/status", "", "chroot"),
    "seccomp-profile": (("--security-opt", "seccomp={profile}"),
                        "mkdir /made 2>&1; grep -E '^Seccomp:' /proc/self/status", "",
                        "chroot"),
    "security-label-accepted": (("--security-opt", "label=disable"), "echo ran", "",
                                "chroot"),
    "device": (("--device", "/dev/fuse"),
               "ls -l /dev/fuse | awk '{print substr($1, 1, 1), $5, $6}'", "", "chroot"),
    "volume": (("-v", "{vol}:/cache/x"), "cat /cache/x/in; ls /cache/x", "", "chroot"),
    "volume-ro": (("-v", "{vol}:/cache/x:ro"),
                  "touch /cache/x/new 2>/dev/null || echo refused", "", "chroot"),
    "volume-u": (("-v", "{vol}:/cache/x:U"), "stat -c '%u %g' /cache/x /cache/x/in", "nobody",
                 "chroot"),
    "userns-uid-map": (("--userns-uid-map", "0:100000:65536", "--userns-gid-map",
                        "0:200000:65536"),
                       "cat /proc/self/uid_map /proc/self/gid_map; id -u", "", "chroot"),
    "memory": (("--memory", "100m"), "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", "",
               "oci"),
    "memory-swap": (("--memory", "100m", "--memory-swap", "150m"),
                    "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "", "oci"),
    "cpu": (("--cpu-shares", "512", "--cpu-period", "50000", "--cpu-quota", "20000"),
            "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_period_us "
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "", "oci"),
    "cpuset": (("--cpuset-cpus", "0", "--cpuset-mems", "0"),
               "cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems", "",
               "oci"),
    "shm-size": (("--shm-size", "96m"), "df -k /dev/shm | tail -1 | awk '{print $2}'", "",
                 "oci"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_flags_match_buildah(case: str, tmp_path: Path, with_busybox: Pybuild,
                                 loaded: Buildah) -> None:
    flags, script, user, isolation = CASES[case]
    if isolation == "oci" and RUNC is None:
        pytest.skip("runc is needed for Buildah's cgroup limits")
    if isolation == "oci" and (Path("/sys/fs/cgroup/cgroup.controllers").exists()):
        pytest.skip("the comparison reads cgroup v1 files")
    if "device" in case and not Path("/dev/fuse").exists():
        pytest.skip("no /dev/fuse here")
    if case == "memory-swap" and not list(Path("/sys/fs/cgroup/memory").glob("memory.memsw*")):
        pytest.skip("no swap accounting here")
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(BLOCK_MKDIR))
    volumes = []
    for who in ("ours", "theirs"):
        vol = tmp_path / f"vol-{who}"
        vol.mkdir()
        (vol / "in").write_text("hello\n")
        volumes.append(vol)
    context = _context(tmp_path, script, user)
    mine = ours(with_busybox, context,
                *(f.format(profile=profile, vol=volumes[0]) for f in flags))
    other = theirs(loaded, context, *(f.format(profile=profile, vol=volumes[1]) for f in flags),
                   isolation=isolation)
    assert other.returncode == 0, other.stderr
    assert _step_output(mine.stdout) == _step_output(other.stdout)
    for vol in volumes:
        assert sorted(os.listdir(vol)) == ["in"]
    assert (os.stat(volumes[0]).st_uid, os.stat(volumes[0] / "in").st_gid) == \
        (os.stat(volumes[1]).st_uid, os.stat(volumes[1] / "in").st_gid)


def test_volume_trees_match_buildah_but_for_its_mount_point(
        tmp_path: Path, with_busybox: Pybuild, loaded: Buildah) -> None:
    vols = [tmp_path / "a", tmp_path / "b"]
    for vol in vols:
        vol.mkdir()
        (vol / "in").write_text("hello\n")
    context = _context(tmp_path, "echo new > /cache/x/out; mkdir -p /cache/x/d; "
                       "echo kept > /kept")
    ours(with_busybox, context, "-v", f"{vols[0]}:/cache/x")
    tag = f"localhost/cmp-{uuid.uuid4().hex[:6]}:latest"
    assert theirs(loaded, context, "-v", f"{vols[1]}:/cache/x", tag=tag).returncode == 0
    layout = tmp_path / "theirs-oci"
    loaded.run("push", "-q", tag, f"oci:{layout}:img")
    mine = read_image(with_busybox.root, "localhost/res:1")[1]
    other = read_image(layout, "img")[1]
    mount_point = {"cache", "cache/x"}
    sandbox_points = {"dev", "proc", "sys", "run", "etc/hosts", "etc/hostname",
                      "etc/resolv.conf"}
    assert set(other) - set(mine) <= mount_point | sandbox_points
    assert mine["kept"] == other["kept"]
    assert not [p for p in mine if p.startswith("cache")]
    assert sorted(os.listdir(vols[0])) == sorted(os.listdir(vols[1])) == ["d", "in", "out"]


def test_no_new_privileges_where_buildah_1_28_refuses_it(
        tmp_path: Path, with_busybox: Pybuild, loaded: Buildah) -> None:
    context = _context(tmp_path, "grep NoNewPrivs /proc/self/status")
    other = theirs(loaded, context, "--security-opt", "no-new-privileges")
    assert other.returncode != 0 and "no-new-privileges is not supported" in other.stderr
    mine = ours(with_busybox, context, "--security-opt", "no-new-privileges")
    assert _step_output(mine.stdout) == ["NoNewPrivs:\t1"]

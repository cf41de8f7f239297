"""RUN's resource and security flags, one table row (or test) per flag, through real
builds on the busybox base: what the step sees, and what never reaches the layer.

Tests marked ``rootless`` run as root and as an unprivileged user (tests/lanes.py);
where the kernel does not let an ordinary user do something (cgroups without
delegation, raising a hard rlimit, idmapping the host's file system) the rootless
lane asserts the error that says so.

Rules named here:

* As Buildah (and Docker), RUN gets no_new_privs only with ``--security-opt
  no-new-privileges``, and runs under the containers' default seccomp profile unless
  ``seccomp=unconfined`` (Buildah 1.28 refuses ``no-new-privileges``; later Buildah
  takes it, as pybuild does).
* ``--cgroup-parent P``: the step's cgroup is ``P/pybuild-ID``; Buildah 1.28 (runc)
  puts the step in ``P`` itself, so limits would change ``P``'s own.
* ``-v``: a mount point pybuild had to create is removed after the step, as for
  ``RUN --mount``; Buildah 1.28 leaves it (empty) in the layer.
* Cache keys: a step's capabilities, no-new-privileges, seccomp profile, devices,
  ulimits, namespaces and each volume's target and options are part of its key; host
  volume paths and contents, resource limits and the runtime are not.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.build.imagetree import read_image
from tests.conftest import Pybuild

pytestmark = pytest.mark.sandbox
HAVE_LIBSECCOMP = any(Path(d, "libseccomp.so.2").exists() for d in
                      ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
                       "/lib/x86_64-linux-gnu"))
DEFAULT_PROFILE = any(Path(p).is_file() for p in ("/etc/containers/seccomp.json",
                                                    "/usr/share/containers/seccomp.json"))
DEFAULT_CAPS = 0x800405FB  # containers.conf's default_capabilities


def build(pybuild: Pybuild, tmp_path: Path, script: str, *flags: str | Path,
          check: bool = True, user: str = "", tag: str = "res:1"):
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    user_line = f"USER {user}\n" if user else ""
    (context / "Containerfile").write_text(f"FROM localhost/busybox\n{user_line}RUN {script}\n")
    return pybuild("bud", "-t", tag, *flags, context, check=check)


def out(result) -> str:
    """What the build's RUN step printed."""
    lines = result.stdout.split("COMMIT")[0].splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("STEP "))


def tree(pybuild: Pybuild, tag: str = "res:1") -> dict:
    return read_image(pybuild.root, f"localhost/{tag}" if ":" in tag else
                      f"localhost/{tag}:latest")[1]


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in {text!r}")


def volume(pybuild: Pybuild, tmp_path: Path, name: str = "vol") -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "in").write_text("hello\n")
    pybuild.own(path)
    return path


# -- volumes


@pytest.mark.rootless
def test_volume_is_seen_written_through_and_never_in_the_layer(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    res = build(with_busybox, tmp_path, "cat /cache/x/in; echo new > /cache/x/out; "
                "mkdir -p /cache/x/sub && touch /cache/x/sub/f", "-v", f"{vol}:/cache/x")
    assert "hello" in out(res)
    assert (vol / "out").read_text() == "new\n" and (vol / "sub/f").exists()
    assert not [p for p in tree(with_busybox) if p.startswith("cache")]


# option -> (script, text the step prints, whether host files change)
VOLUME_OPTIONS = {
    "ro": ("echo x > /v/new 2>/dev/null || echo refused; cat /v/in", "refused\nhello", False),
    "rw": ("echo x > /v/new && cat /v/new", "x", True),
    "z": ("echo x > /v/new && cat /v/new", "x", True),  # no SELinux here: accepted
    "Z": ("echo x > /v/new && cat /v/new", "x", True),
    "ro,z": ("echo x > /v/new 2>/dev/null || echo refused", "refused", False),
    "O": ("echo x > /v/new && echo more >> /v/in && cat /v/new /v/in", "x\nhello\nmore", False),
    "noexec": ("echo x > /v/new; cp /bin/busybox /v/bb; /v/bb true 2>/dev/null || echo no-exec; "
               "rm /v/bb", "no-exec", True),
    "bind,nosuid": ("echo x > /v/new && cat /v/new", "x", True),
}


@pytest.mark.rootless
@pytest.mark.parametrize("option", sorted(VOLUME_OPTIONS))
def test_volume_options(option: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    script, expected, changes = VOLUME_OPTIONS[option]
    vol = volume(with_busybox, tmp_path)
    res = build(with_busybox, tmp_path, script, "-v", f"{vol}:/v:{option}")
    assert expected in out(res)
    assert (vol / "new").exists() == changes
    assert (vol / "in").read_text() == "hello\n"  # O: the step's writes were thrown away
    assert not [p for p in tree(with_busybox) if p == "v" or p.startswith("v/")]


@pytest.mark.rootless
def test_volume_u_gives_the_directory_to_the_steps_user(tmp_path: Path,
                                                        with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    res = build(with_busybox, tmp_path, "stat -c %u:%g /v /v/in; touch /v/by-nobody && echo ok",
                "-v", f"{vol}:/v:U", user="nobody")
    assert out(res).split() == ["65534:65534", "65534:65534", "ok"]


VOLUME_ERRORS = [
    (("-v", "relative/dir:/x"), "the host path must be absolute"),
    (("-v", "/nonexistent-pybuild-dir:/x"), "/nonexistent-pybuild-dir does not exist"),
    (("-v", "/tmp:x"), "the container path must be absolute"),
    (("-v", "/tmp:/x:rw,ro"), "only one of rw, ro"),
    (("-v", "/tmp:/x:bogus"), "unknown option 'bogus'"),
    (("-v", "/tmp"), "expected HOST-DIR:CONTAINER-DIR"),
]


@pytest.mark.parametrize("flags,message", VOLUME_ERRORS, ids=lambda v: str(v))
def test_volume_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                       with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


def test_volume_and_run_mount_on_one_target_is_an_error(tmp_path: Path,
                                                         with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    res = build(with_busybox, tmp_path, "--mount=type=tmpfs,target=/v true",
                "-v", f"{vol}:/v", check=False)
    assert res.returncode == 125 and "mounting /v: more than one" in res.stderr


# -- capabilities


def _bounding() -> int:
    text = Path("/proc/self/status").read_text()
    return int(status_field(text, "CapBnd"), 16)


CAPS = {  # flags -> expected bounding (and, for root, effective) set
    "default": ((), DEFAULT_CAPS),
    "add-lowercase": (("--cap-add", "net_admin"), DEFAULT_CAPS | 1 << 12),
    "add-with-prefix": (("--cap-add", "CAP_SYS_ADMIN,cap_net_raw"),
                        DEFAULT_CAPS | 1 << 21 | 1 << 13),
    "drop": (("--cap-drop", "chown", "--cap-drop", "CAP_KILL"),
             DEFAULT_CAPS & ~(1 << 0) & ~(1 << 5)),
    "drop-all-add-one": (("--cap-drop", "ALL", "--cap-add", "CHOWN"), 1 << 0),
    "drop-all": (("--cap-drop", "all"), 0),
}


@pytest.mark.rootless
@pytest.mark.parametrize("case", sorted(CAPS))
def test_capabilities(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, expected = CAPS[case]
    res = build(with_busybox, tmp_path, "grep Cap /proc/self/status", *flags)
    assert int(status_field(out(res), "CapBnd"), 16) == expected
    assert int(status_field(out(res), "CapEff"), 16) == expected


def test_cap_add_all_gives_the_builders_bounding_set(tmp_path: Path,
                                                    with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "grep CapBnd /proc/self/status", "--cap-add", "ALL")
    assert int(status_field(out(res), "CapBnd"), 16) == _bounding()


@pytest.mark.rootless
def test_capabilities_of_other_users_start_empty(tmp_path: Path,
                                                 with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "grep Cap /proc/self/status", "--cap-add", "NET_ADMIN",
                user="nobody")
    assert int(status_field(out(res), "CapEff"), 16) == 0
    assert int(status_field(out(res), "CapBnd"), 16) == DEFAULT_CAPS | 1 << 12


CAP_ERRORS = [
    (("--cap-add", "NOT_A_CAP"), "parsing --cap-add 'NOT_A_CAP': unknown capability"),
    (("--cap-add", "chown", "--cap-drop", "CAP_CHOWN"), "CAP_CHOWN cannot be dropped and added"),
    (("--cap-add", "all", "--cap-drop", "all"), "adding all capabilities and dropping all"),
]


@pytest.mark.parametrize("flags,message", CAP_ERRORS, ids=lambda v: str(v))
def test_capability_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                           with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


# -- security options

needs_seccomp = pytest.mark.skipif(not (HAVE_LIBSECCOMP and DEFAULT_PROFILE),
                                   reason="libseccomp2 and containers' seccomp.json needed")
BLOCK_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 1}]}

# flags -> (script, expected lines); "{profile}" is a profile blocking mkdir
SECURITY = {
    "default": ((), "grep -E 'NoNewPrivs|Seccomp:' /proc/self/status",
                ["NoNewPrivs:\t0", "Seccomp:\t2"]),
    "no-new-privileges": (("--security-opt", "no-new-privileges"),
                          "grep NoNewPrivs /proc/self/status", ["NoNewPrivs:\t1"]),
    "no-new-privileges=false": (("--security-opt", "no-new-privileges=false"),
                                "grep NoNewPrivs /proc/self/status", ["NoNewPrivs:\t0"]),
    "seccomp-unconfined": (("--security-opt", "seccomp=unconfined"),
                           "grep Seccomp: /proc/self/status", ["Seccomp:\t0"]),
    "seccomp-profile": (("--security-opt", "seccomp={profile}"),
                        "grep Seccomp: /proc/self/status; mkdir /made 2>&1; touch /touched "
                        "&& echo touched",
                        ["Seccomp:\t2", "mkdir: can't create directory '/made': Operation "
                         "not permitted", "touched"]),
    "sys-admin-lifts-the-profile-rule": (
        ("--cap-add", "SYS_ADMIN"), "sethostname() { :; }; hostname other && hostname",
        ["other"]),
}


@pytest.mark.rootless
@needs_seccomp
@pytest.mark.parametrize("case", sorted(SECURITY))
def test_security_options(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, script, expected = SECURITY[case]
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(BLOCK_MKDIR))
    res = build(with_busybox, tmp_path, script, *(f.format(profile=profile) for f in flags))
    lines = out(res).splitlines()
    assert all(line in lines for line in expected), lines


@pytest.mark.parametrize("option,host_has", [("label=disable", "SELinux"),
                                             ("apparmor=my-profile", "AppArmor")])
def test_label_and_apparmor_are_reported_unused(option: str, host_has: str, tmp_path: Path,
                                                with_busybox: Pybuild) -> None:
    if Path("/sys/fs/selinux/enforce").exists() or Path("/sys/module/apparmor").exists():
        pytest.skip("this host has SELinux or AppArmor")
    res = build(with_busybox, tmp_path, "echo ran", "--security-opt", option)
    assert "ran" in out(res)
    assert f"ignoring --security-opt {option}: this host has no {host_has}" in res.stderr


SECURITY_ERRORS = [
    (("--security-opt", "mask=/x"), "parsing --security-opt 'mask=/x': unknown option"),
    (("--security-opt", "seccomp=/nonexistent.json"), "reading seccomp profile"),
    (("--security-opt", "no-new-privileges=maybe"), "expected true or false"),
]


@pytest.mark.parametrize("flags,message", SECURITY_ERRORS, ids=lambda v: str(v))
def test_security_option_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                                with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


# -- devices


DEVICES = {  # flags -> (script, expected)
    "node": (("--device", "/dev/zero:/dev/myzero"),
             "ls -l /dev/myzero | awk '{print substr($1, 1, 1), $5, $6}'; "
             "head -c 3 /dev/myzero | od -An -tx1", "c 1, 5\n 00 00 00"),
    "outside-dev": (("--device", "/dev/zero:/opt/zero:rw"), "ls -l /opt/zero | cut -c1",
                    "c"),
    "fuse": (("--device", "/dev/fuse"), "ls -l /dev/fuse | awk '{print substr($1, 1, 1), $5, $6}'",
             "c 10, 229"),
}


@pytest.mark.rootless
@pytest.mark.parametrize("case", sorted(DEVICES))
def test_devices(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, script, expected = DEVICES[case]
    if not all(os.path.exists(f.split(":")[0]) for f in flags if f.startswith("/dev/")):
        pytest.skip("the device is missing here")
    res = build(with_busybox, tmp_path, script, *flags)
    assert expected in out(res)
    assert not [p for p in tree(with_busybox) if p in ("opt", "opt/zero", "dev/myzero")]


@pytest.mark.parametrize("flags,message", [
    (("--device", "/nonexistent-device"), "checking --device /nonexistent-device"),
    (("--device", "/etc/hostname"), "not a device node"),
    (("--device", "/dev/null:/dev/x:rwx"), "invalid permissions 'rwx'"),
], ids=lambda v: str(v))
def test_device_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                       with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


# -- ulimits and /dev/shm


ULIMITS = {  # flags -> (script, expected)
    "nofile-soft-hard": (("--ulimit", "nofile=512:1024"), "ulimit -n; ulimit -Hn", "512\n1024"),
    "nofile-soft-only": (("--ulimit", "nofile=256"), "ulimit -n; ulimit -Hn", "256\n256"),
    "two-at-once": (("--ulimit", "nproc=300:400,core=0"), "ulimit -u; ulimit -c", "300\n0"),
    "stack-unlimited": (("--ulimit", "stack=-1:-1"), "ulimit -s", "unlimited"),
    "shm-size": (("--shm-size", "128m"), "df -k /dev/shm | tail -1 | awk '{print $2}'",
                 "131072"),
    "shm-default": ((), "df -k /dev/shm | tail -1 | awk '{print $2}'", "65536"),
}


@pytest.mark.rootless
@pytest.mark.parametrize("case", sorted(ULIMITS))
def test_ulimits_and_shm(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, script, expected = ULIMITS[case]
    if case == "stack-unlimited" and with_busybox.lane == "rootless":
        pytest.skip("raising a hard limit needs root (see the next test)")
    assert out(build(with_busybox, tmp_path, script, *flags)).strip() == expected


@pytest.mark.rootless
def test_raising_a_hard_limit(tmp_path: Path, with_busybox: Pybuild) -> None:
    """Root with CAP_SYS_RESOURCE may raise a hard limit; without it (an ordinary user, or
    root where it is withheld, as on these CI machines) the step fails saying why."""
    import resource

    above = resource.getrlimit(resource.RLIMIT_NOFILE)[1] + 1000
    res = build(with_busybox, tmp_path, "ulimit -Hn", "--ulimit", f"nofile={above}",
                check=False)
    may = with_busybox.lane == "root" and int(status_field(
        Path("/proc/self/status").read_text(), "CapEff"), 16) & 1 << 24
    if may:
        assert out(res).strip() == str(above)
    else:
        assert res.returncode != 0
        assert f"setting --ulimit nofile={above}:{above}" in res.stdout + res.stderr
        assert "raising it needs root with CAP_SYS_RESOURCE" in res.stdout + res.stderr


@pytest.mark.parametrize("flags,message", [
    (("--ulimit", "nofile=2048:1024"), "the soft limit must not exceed the hard limit"),
    (("--ulimit", "bogus=1"), "parsing --ulimit 'bogus=1'"),
    (("--shm-size", "lots"), "parsing --shm-size 'lots'"),
], ids=lambda v: str(v))
def test_ulimit_and_shm_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                               with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


# -- cgroups


def _cgroup_version() -> int:
    try:
        kind = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return 0
    return 2 if kind == "cgroup2fs" else 1


# case -> (flags, the file under /sys/fs/cgroup with cgroup v1, its v2 file, v1 value, v2)
CGROUPS = {
    "memory": (("--memory", "100m"), "memory/memory.limit_in_bytes", "memory.max",
               "104857600", "104857600"),
    "memory-swap": (("-m", "100m", "--memory-swap", "200m"),
                    "memory/memory.memsw.limit_in_bytes", "memory.swap.max",
                    "209715200", "104857600"),
    "cpu-shares": (("--cpu-shares", "512"), "cpu/cpu.shares", "cpu.weight", "512", "20"),
    "cpu-quota-and-period": (("--cpu-period", "50000", "--cpu-quota", "25000"),
                             "cpu/cpu.cfs_quota_us", "cpu.max", "25000", "25000 50000"),
    "cpu-period": (("--cpu-period", "50000"), "cpu/cpu.cfs_period_us", "cpu.max", "50000",
                   "max 50000"),
    "cpuset-cpus": (("--cpuset-cpus", "0"), "cpuset/cpuset.cpus", "cpuset.cpus", "0", "0"),
    "cpuset-mems": (("--cpuset-mems", "0"), "cpuset/cpuset.mems", "cpuset.mems", "0", "0"),
}


def _no_cgroup_error(res, lane: str) -> bool:
    """False when the build failed because this user may not create cgroups (asserting
    the message says so)."""
    if res.returncode == 0:
        return True
    assert lane == "rootless", res.stderr
    assert res.returncode == 125
    assert "this user may not create cgroups" in res.stderr
    assert "cgroup v1 hierarchies are never delegated" in res.stderr or \
        "delegated cgroup" in res.stderr
    return False


@pytest.mark.rootless
@pytest.mark.parametrize("case", sorted(CGROUPS))
def test_cgroup_limits(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, v1, v2, value1, value2 = CGROUPS[case]
    version = _cgroup_version()
    path, expected = (v2, value2) if version == 2 else (v1, value1)
    if version == 1 and case == "memory-swap" and not list(
            Path("/sys/fs/cgroup/memory").glob("memory.memsw.*")):
        pytest.skip("no swap accounting here")
    res = build(with_busybox, tmp_path, f"cat /sys/fs/cgroup/{path}; cat /proc/self/cgroup",
                *flags, check=False)
    if _no_cgroup_error(res, with_busybox.lane):
        lines = out(res).splitlines()
        assert lines[0] == expected
        assert any("/pybuild-" in line for line in lines[1:])
        assert not [p for p in tree(with_busybox) if p.startswith("sys/")]


@pytest.mark.rootless
def test_memory_limit_stops_a_step(tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "head -c 200m /dev/zero | tail > /dev/null",
                "--memory", "32m", "--memory-swap", "32m", check=False)
    if "may not create cgroups" in res.stderr:
        assert _no_cgroup_error(res, with_busybox.lane) is False
        return
    assert res.returncode != 0
    assert "exit status 137" in res.stderr  # the kernel's OOM killer: SIGKILL


def test_cgroup_parent_holds_the_steps_cgroup_and_is_removed(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    parent = f"/pybuild-test-{uuid.uuid4().hex[:8]}"
    res = build(with_busybox, tmp_path, "cat /proc/self/cgroup", "--cgroup-parent", parent)
    lines = [line for line in out(res).splitlines() if ":" in line]
    joined = [line for line in lines if "name=" not in line]  # every controller's, and v2's
    assert joined and all(f":{parent}/pybuild-" in line for line in joined), lines
    assert not list(Path("/sys/fs/cgroup").glob(f"*{parent}")) and \
        not Path(f"/sys/fs/cgroup{parent}").exists()


def test_cgroups_of_a_step_are_removed(tmp_path: Path, with_busybox: Pybuild) -> None:
    before = sorted(str(p) for p in Path("/sys/fs/cgroup").rglob("pybuild-*"))
    build(with_busybox, tmp_path, "true", "--memory", "64m", "--cpu-shares", "100")
    assert sorted(str(p) for p in Path("/sys/fs/cgroup").rglob("pybuild-*")) == before


# -- namespaces


def _ns(text: str, kind: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{kind}:["):
            return line
    raise AssertionError(f"no {kind} namespace in {text!r}")


NS_SCRIPT = ("for n in pid ipc uts cgroup user; do readlink /proc/self/ns/$n; done; "
             "hostname")
# flags -> {namespace: "host" (the builder's) | "own" (another)}
NAMESPACES = {
    "default": ((), {"pid": "own", "ipc": "own", "uts": "own", "cgroup": "host"}),
    "pid-host": (("--pid", "host"), {"pid": "host", "ipc": "own"}),
    "pid-private": (("--pid", "private"), {"pid": "own"}),
    "ipc-host": (("--ipc", "host"), {"ipc": "host", "pid": "own"}),
    "uts-host": (("--uts", "host"), {"uts": "host"}),
    "uts-container": (("--uts", "container"), {"uts": "own"}),
    "cgroupns-private": (("--cgroupns", "private"), {"cgroup": "own"}),
    "cgroupns-host": (("--cgroupns", "host"), {"cgroup": "host"}),
    "userns-private": (("--userns", "private"), {"user": "own"}),
    "userns-host": (("--userns", "host"), {"user": "host"}),
}


@pytest.mark.rootless
@pytest.mark.parametrize("case", sorted(NAMESPACES))
def test_namespaces(case: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags, expected = NAMESPACES[case]
    # the builder's own namespaces: those of a process the lane's user starts
    probe = subprocess.run(with_busybox.command("sh", "-c", NS_SCRIPT.replace("hostname", "")),
                           capture_output=True, text=True, check=True)
    res = build(with_busybox, tmp_path, NS_SCRIPT, *flags)
    for kind, where in expected.items():
        same = _ns(out(res), kind) == _ns(probe.stdout, kind)
        if kind == "user" and with_busybox.lane == "rootless":
            # the builder runs in its own user namespace; the default step shares it
            continue
        assert same == (where == "host"), (kind, out(res), probe.stdout)
    if expected.get("uts") == "host":
        assert out(res).splitlines()[-1] == socket.gethostname()
    elif "uts" in expected:
        assert out(res).splitlines()[-1] == "pybuild"


@pytest.mark.rootless
def test_pid_host_sees_the_hosts_processes_and_leaves_none(tmp_path: Path,
                                                           with_busybox: Pybuild) -> None:
    marker = uuid.uuid4().hex[:8]
    res = build(with_busybox, tmp_path, f"sleep 7{marker[:3]}1 & ps -o pid | wc -l",
                "--pid", "host")
    assert int(out(res).split()[-1]) > 10  # the host's processes, not a few of our own
    left = subprocess.run(["pgrep", "-f", f"sleep 7{marker[:3]}1"], capture_output=True)
    assert left.returncode == 1, left.stdout


def test_joining_namespaces_by_path(tmp_path: Path, with_busybox: Pybuild) -> None:
    holder = subprocess.Popen(["unshare", "--ipc", "--uts", "sleep", "60"])
    try:
        for _ in range(500):
            if os.stat(f"/proc/{holder.pid}/ns/ipc").st_ino != os.stat("/proc/self/ns/ipc").st_ino:
                break
            time.sleep(0.01)
        ipc = os.readlink(f"/proc/{holder.pid}/ns/ipc")
        uts = os.readlink(f"/proc/{holder.pid}/ns/uts")
        res = build(with_busybox, tmp_path, "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts",
                    "--ipc", f"/proc/{holder.pid}/ns/ipc", "--uts", f"ns:/proc/{holder.pid}/ns/uts")
        assert out(res).split() == [ipc, uts]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("flags,message", [
    (("--pid", "bogus"), "parsing --pid 'bogus': expected private, host"),
    (("--ipc", "/nonexistent/ns"), "checking --ipc /nonexistent/ns: no such namespace file"),
    (("--userns", "auto"), "automatic id ranges are not supported"),
    (("--userns", "host", "--userns-uid-map", "0:1:1"), "cannot be used with the host's"),
    (("--userns-uid-map", "0:1"), "expected CONTAINER-ID:HOST-ID:SIZE"),
], ids=lambda v: str(v))
def test_namespace_errors(flags: tuple[str, ...], message: str, tmp_path: Path,
                          with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", *flags, check=False)
    assert res.returncode == 125 and message in res.stderr, res.stderr


# -- user namespace maps


MAPS = {  # flags -> uid_map and gid_map lines the step sees
    "uid-map": (("--userns-uid-map", "0:100000:65536"), ["0 100000 65536"] * 2),
    "both-maps": (("--userns-uid-map", "0:100000:1000,1000:200000:1000",
                   "--userns-gid-map", "0:300000:65536"),
                  ["0 100000 1000", "1000 200000 1000", "0 300000 65536"]),
}


@pytest.mark.parametrize("case", sorted(MAPS))
def test_userns_maps_keep_the_layers_ids(case: str, tmp_path: Path,
                                         with_busybox: Pybuild) -> None:
    flags, expected = MAPS[case]
    res = with_busybox("--storage-driver", "vfs", "bud", "-t", "res:1", *flags,
                       _context(tmp_path, "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                "touch /made && chown 7:8 /made; ls -ln /bin/busybox"))
    lines = [" ".join(line.split()) for line in out(res).splitlines()]
    assert lines[:len(expected)] == expected
    assert lines[len(expected)] == "0"
    assert " 0 0 " in lines[-1]  # the image's files are root's inside
    assert tree(with_busybox)["made"][2:4] == (7, 8)  # ids in the layer are the step's own


def _context(tmp_path: Path, script: str) -> Path:
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    (context / "Containerfile").write_text(f"FROM localhost/busybox\nRUN {script}\n")
    return context


def test_userns_map_user_reads_etc_subuid(tmp_path: Path, with_busybox: Pybuild) -> None:
    from tests.lanes import ensure_user

    entry = ensure_user()
    start = next(line.split(":")[1] for line in Path("/etc/subuid").read_text().splitlines()
                 if line.split(":")[0] in (entry.pw_name, str(entry.pw_uid)))
    res = with_busybox("--storage-driver", "vfs", "bud", "--userns-uid-map-user", entry.pw_name,
                       _context(tmp_path, "cat /proc/self/uid_map"))
    assert " ".join(out(res).split()[:2]) == f"0 {start}"


@pytest.mark.rootless
def test_userns_maps_on_overlay_or_as_a_user_say_why_not(tmp_path: Path,
                                                         with_busybox: Pybuild) -> None:
    driver = ("--storage-driver", "vfs") if with_busybox.lane == "rootless" else ()
    res = with_busybox(*driver, "bud", "--userns-uid-map", "0:1:1000",
                       _context(tmp_path, "true"), check=False)
    if with_busybox.lane == "root":
        info = json.loads(with_busybox("info", "--format", "json").stdout)
        if info["store"]["driver"] != "overlay":
            pytest.skip("the store is not on overlay")
        assert "an overlay cannot be: use --storage-driver vfs" in res.stderr
    else:
        assert "an ordinary user cannot idmap files of the host's file system" in res.stderr
    assert res.returncode == 125


# -- the OCI runtime


needs_runc = pytest.mark.skipif(shutil.which("runc") is None or os.geteuid() != 0,
                                reason="runc (as root) needed")


@needs_runc
def test_oci_isolation_applies_the_flags(tmp_path: Path, with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    res = build(with_busybox, tmp_path,
                "grep -E 'CapBnd|NoNewPrivs' /proc/self/status; ulimit -n; "
                "df -k /dev/shm | tail -1 | awk '{print $2}'; ls -l /dev/myzero | cut -c1; "
                "cat /v/in; echo thrown > /v/away",
                "--isolation", "oci", "--cap-add", "NET_ADMIN", "--security-opt",
                "no-new-privileges", "--ulimit", "nofile=300", "--shm-size", "32m",
                "--device", "/dev/zero:/dev/myzero", "-v", f"{vol}:/v:O")
    lines = out(res).splitlines()
    assert lines[:6] == [f"CapBnd:\t{DEFAULT_CAPS | 1 << 12:016x}", "NoNewPrivs:\t1", "300",
                         "32768", "c", "hello"]
    assert not (vol / "away").exists()


@needs_runc
def test_runtime_flags_and_hooks(tmp_path: Path, with_busybox: Pybuild) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\ncat > {marker}\n")
    script.chmod(0o755)
    (hooks / "01-mark.json").write_text(json.dumps({
        "version": "1.0.0", "hook": {"path": str(script)}, "when": {"commands": ["^/bin/sh$"]},
        "stages": ["prestart"]}))
    (hooks / "02-never.json").write_text(json.dumps({
        "version": "1.0.0", "hook": {"path": "/bin/false"},
        "when": {"commands": ["^never$"]}, "stages": ["prestart"]}))
    log = tmp_path / "runc.log"
    res = build(with_busybox, tmp_path, "echo ran", "--isolation", "oci",
                "--runtime", shutil.which("runc") or "runc", "--runtime-flag", f"log={log}",
                "--runtime-flag", "debug", "--hooks-dir", hooks)
    assert "ran" in out(res)
    assert json.loads(marker.read_text())["status"] in ("creating", "created")  # OCI state
    assert log.exists() and log.stat().st_size > 0


def test_runtime_flags_with_chroot_are_reported_unused(tmp_path: Path,
                                                       with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "echo ran", "--runtime", "crun", "--hooks-dir", "/x")
    assert "ran" in out(res)
    assert "ignoring --runtime: it applies to --isolation oci" in res.stderr
    assert "ignoring --hooks-dir" in res.stderr


@needs_runc
def test_missing_runtime(tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "true", "--isolation", "oci", "--runtime",
                "/nonexistent/runtime", check=False)
    assert res.returncode == 125 and "runtime /nonexistent/runtime not found" in res.stderr


# -- cache keys


@pytest.mark.rootless
def test_cache_keys(tmp_path: Path, with_busybox: Pybuild) -> None:
    """What can change a step's result is in its key; host volume paths and contents and
    resource limits are not."""
    context = _context(tmp_path, "echo ran-$RANDOM")
    vol, other = volume(with_busybox, tmp_path), volume(with_busybox, tmp_path, "other")

    def cached(*flags: str | Path) -> bool:
        return "Using cache" in with_busybox("bud", *flags, context).stdout

    assert not cached()
    assert cached("--shm-size", "100m")  # limits are not in the key
    assert not cached("-v", f"{vol}:/cache")
    (vol / "in").write_text("changed\n")
    assert cached("-v", f"{vol}:/cache")  # contents are not in the key
    assert cached("-v", f"{other}:/cache")  # nor the host path
    assert not cached("-v", f"{vol}:/elsewhere")  # the target is
    assert not cached("-v", f"{vol}:/elsewhere:ro")  # and the options
    assert not cached("--cap-add", "NET_ADMIN")
    assert cached("--cap-add", "net_admin")  # the same set, spelled differently
    assert not cached("--ulimit", "nofile=500")
    assert not cached("--pid", "host")


# -- from and run


@pytest.mark.rootless
def test_from_saves_the_flags_and_run_adds_its_own(tmp_path: Path,
                                                   with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    name = with_busybox("from", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--ulimit",
                        "nofile=123", "-v", f"{vol}:/v:ro", "localhost/busybox").stdout.strip()
    res = with_busybox("run", "--cap-add", "KILL", "--shm-size", "16m", name, "--",
                       "sh", "-c", "grep CapBnd /proc/self/status; ulimit -n; cat /v/in; "
                       "df -k /dev/shm | tail -1 | awk '{print $2}'")
    assert res.stdout.split() == ["CapBnd:", f"{1 << 0 | 1 << 5:016x}", "123", "hello", "16384"]


@pytest.mark.rootless
def test_run_an_image_with_the_flags(tmp_path: Path, with_busybox: Pybuild) -> None:
    vol = volume(with_busybox, tmp_path)
    res = with_busybox("run", "-v", f"{vol}:/data:O", "--security-opt", "no-new-privileges",
                       "--pid", "host", "localhost/busybox", "sh", "-c",
                       "echo x >> /data/in; cat /data/in; grep NoNewPrivs /proc/self/status")
    assert res.stdout.split() == ["hello", "x", "NoNewPrivs:", "1"]
    assert (vol / "in").read_text() == "hello\n"

"""The values RUN's resource and security flags become, without running anything: flag
syntax (Buildah's), capability sets (containers/common's merge rules), seccomp profile
filtering, OCI hook matching, cgroup placement and limit files (cgroup v2 only on a
synthetic tree: these machines have cgroup v1), and what reaches a cache key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.executor import capabilities, cgroups, confinement, ocihooks, seccomp
from builder.runsettings import (
    Device,
    IdMapping,
    RunSettings,
    Ulimit,
    Volume,
    parse_bytes,
    parse_namespace,
)

VOLUMES = [
    ("/h:/c", Volume("/h", "/c", ())),
    ("/h:/c:ro,Z", Volume("/h", "/c", ("ro", "Z"))),
    ("/h:/c:U,O", Volume("/h", "/c", ("U", "O"))),
    ("/a\\:b:/c:cached", Volume("/a:b", "/c", ())),  # an escaped colon; macOS options dropped
]


@pytest.mark.parametrize("text,expected", VOLUMES)
def test_volume_syntax(text: str, expected: Volume) -> None:
    volume = Volume.parse(text)
    assert volume == expected
    assert Volume.parse(str(volume)) == volume


def test_volume_properties() -> None:
    volume = Volume.parse("/h:/c:ro,U,O")
    assert volume.readonly and volume.chown and volume.overlay


@pytest.mark.parametrize("text,expected", [
    ("/dev/fuse", Device("/dev/fuse", "/dev/fuse", "rwm")),
    ("/dev/sdc:/dev/xvdc", Device("/dev/sdc", "/dev/xvdc", "rwm")),
    ("/dev/sdc:r", Device("/dev/sdc", "/dev/sdc", "r")),
    ("/dev/sdc:/dev/xvdc:rw", Device("/dev/sdc", "/dev/xvdc", "rw")),
])
def test_device_syntax(text: str, expected: Device) -> None:
    assert Device.parse(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("nofile=1024", Ulimit("nofile", 1024, 1024)),
    ("nofile=1024:2048", Ulimit("nofile", 1024, 2048)),
    ("RLIMIT_NPROC=5:-1", Ulimit("nproc", 5, -1)),
    ("core=unlimited", Ulimit("core", -1, -1)),
])
def test_ulimit_syntax(text: str, expected: Ulimit) -> None:
    assert Ulimit.parse(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("0:100000:65536", (IdMapping(0, 100000, 65536),)),
    ("0:1:2,3:4:5", (IdMapping(0, 1, 2), IdMapping(3, 4, 5))),
])
def test_id_map_syntax(text: str, expected: tuple[IdMapping, ...]) -> None:
    assert IdMapping.parse_list(text, "--userns-uid-map") == expected


@pytest.mark.parametrize("text,expected", [("100", 100), ("1k", 1024), ("64m", 64 << 20),
                                           ("2g", 2 << 30), ("1.5k", 1536), ("10MB", 10 << 20)])
def test_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text, "--memory") == expected


@pytest.mark.parametrize("text,expected", [("", "private"), ("container", "private"),
                                           ("host", "host"), ("ns:/proc/1/ns/pid",
                                                              "/proc/1/ns/pid")])
def test_namespace_values(text: str, expected: str) -> None:
    assert parse_namespace(text, "--pid") == expected


def test_settings_round_trip_through_a_containers_state() -> None:
    settings = RunSettings(volumes=(Volume.parse("/h:/c:ro"),), ulimits=(Ulimit.parse(
        "nofile=5"),), uid_map=(IdMapping(0, 1, 2),), cap_add=("CAP_KILL",), memory=5,
        pid="host", no_new_privileges=True)
    saved = json.loads(json.dumps(settings.to_json()))
    assert RunSettings.from_json(saved) == settings
    assert RunSettings.from_json({}) == RunSettings()


def test_list_flags_add_up_and_others_override() -> None:
    base = RunSettings(volumes=(Volume.parse("/a:/a"),), cap_add=("CAP_KILL",), memory=1,
                       pid="host")
    run = RunSettings(volumes=(Volume.parse("/b:/b"),), cap_add=("CAP_CHOWN",), memory=2)
    merged = run.merged_over(base)
    assert [v.target for v in merged.volumes] == ["/a", "/b"]
    assert merged.cap_add == ("CAP_KILL", "CAP_CHOWN")
    assert (merged.memory, merged.pid) == (2, "host")


DEFAULT = set(capabilities.DEFAULT_CAPABILITIES)


@pytest.mark.parametrize("adds,drops,expected", [
    ((), (), DEFAULT),
    (("net_admin",), (), DEFAULT | {"CAP_NET_ADMIN"}),
    (("CAP_NET_ADMIN",), ("chown",), DEFAULT - {"CAP_CHOWN"} | {"CAP_NET_ADMIN"}),
    (("kill",), ("ALL",), {"CAP_KILL"}),
    ((), ("all",), set()),
])
def test_capability_merge(adds: tuple[str, ...], drops: tuple[str, ...],
                          expected: set[str]) -> None:
    assert set(capabilities.merge(adds, drops)) == expected


@pytest.mark.parametrize("adds,drops,message", [
    (("nope",), (), "unknown capability"),
    (("kill",), ("CAP_KILL",), "cannot be dropped and added"),
    (("all",), ("all",), "adding all capabilities and dropping all"),
])
def test_capability_errors(adds: tuple[str, ...], drops: tuple[str, ...],
                           message: str) -> None:
    with pytest.raises(UsageError, match=message):
        capabilities.merge(adds, drops)


PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                 "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["reboot"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM",
         "excludes": {"caps": ["CAP_SYS_BOOT"]}},
        {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    ],
}


def test_seccomp_rules_follow_the_capabilities() -> None:
    plain = seccomp.to_oci(PROFILE, capabilities.DEFAULT_CAPABILITIES, "x")
    admin = seccomp.to_oci(PROFILE, ("CAP_SYS_ADMIN", "CAP_SYS_BOOT"), "x")
    assert plain is not None and admin is not None
    names = [rule["names"] for rule in plain["syscalls"]]
    assert ["mount"] not in names and ["reboot"] in names and ["future"] not in names
    assert ["mount"] in [r["names"] for r in admin["syscalls"]]
    assert ["reboot"] not in [r["names"] for r in admin["syscalls"]]
    assert plain["defaultErrnoRet"] == 38  # ENOSYS
    assert next(r for r in plain["syscalls"] if r["names"] == ["reboot"])["errnoRet"] == 1


@pytest.mark.skipif(not Path("/usr/share/containers/seccomp.json").exists(),
                    reason="no default profile")
def test_default_profile_compiles_to_bpf() -> None:
    profile = seccomp.to_oci(seccomp.load(Path("/usr/share/containers/seccomp.json")),
                             capabilities.DEFAULT_CAPABILITIES, "x")
    assert profile is not None
    try:
        program = seccomp.compile_bpf(profile, "x")
    except Exception as exc:  # noqa: BLE001 - no libseccomp: the error names the package
        assert "libseccomp2" in str(getattr(exc, "hint", "")), exc
        return
    assert len(program) % 8 == 0 and len(program) > 800  # sock_filter instructions


def test_hooks_match_all_their_conditions(tmp_path: Path) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    low.mkdir()
    high.mkdir()

    def hook(directory: Path, name: str, when: dict, path: str = "/bin/true") -> None:
        (directory / name).write_text(json.dumps({"version": "1.0.0", "hook": {"path": path},
                                                  "when": when, "stages": ["prestart"]}))

    hook(low, "10-masked.json", {"always": True}, "/low")
    hook(high, "10-masked.json", {"always": True}, "/high")  # a later directory masks
    hook(low, "20-sh.json", {"commands": ["^/bin/sh$"]}, "/sh")
    hook(low, "30-sh-and-binds.json", {"commands": ["sh$"], "hasBindMounts": True}, "/both")
    hook(low, "40-other.json", {"commands": ["^/usr/bin/python"]}, "/never")
    found = ocihooks.hooks_for((str(low), str(high), str(tmp_path / "missing")), "/bin/sh", {},
                               False)
    assert [h["path"] for h in found["prestart"]] == ["/high", "/sh"]
    found = ocihooks.hooks_for((str(low),), "/bin/sh", {}, True)
    assert [h["path"] for h in found["prestart"]] == ["/low", "/sh", "/both"]


MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
OWN_V1 = "9:name=systemd:/\n3:cpu,cpuacct:/a\n4:memory:/job/1\n0::/\n"


def test_cgroup_v1_hierarchies() -> None:
    found = cgroups.hierarchies(MOUNTINFO_V1, OWN_V1)
    by_mount = {str(h.mountpoint): h for h in found}
    assert by_mount["/sys/fs/cgroup/memory"].own == "/job/1"
    assert by_mount["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert by_mount["/sys/fs/cgroup/cpu,cpuacct"].own == "/a"
    assert "/sys/fs/cgroup/systemd" not in by_mount  # no controller
    assert by_mount["/sys/fs/cgroup/unified"].version == 2


def _v2_tree(tmp_path: Path) -> cgroups.Hierarchy:
    root = tmp_path / "cgroup"
    (root / "user.slice" / "app.scope").mkdir(parents=True)
    for directory in (root, root / "user.slice", root / "user.slice" / "app.scope"):
        (directory / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (directory / "cgroup.subtree_control").write_text("memory\n")
    return cgroups.Hierarchy(2, root, "/", frozenset({"cpuset", "cpu", "io", "memory", "pids"}),
                             "/user.slice/app.scope")


def test_cgroup_v2_limits_and_placement(tmp_path: Path) -> None:
    hierarchy = _v2_tree(tmp_path)
    settings = RunSettings(memory=100 << 20, memory_swap=150 << 20, cpu_shares=512,
                           cpu_quota=25000, cpu_period=50000, cpuset_cpus="0-1")
    assert cgroups._limits(settings, hierarchy) == [  # noqa: SLF001
        ("memory.max", str(100 << 20)), ("memory.swap.max", str(50 << 20)),
        ("cpu.weight", "20"), ("cpu.max", "25000 50000"), ("cpuset.cpus", "0-1")]
    unlimited = RunSettings(memory=1 << 20, memory_swap=-1, cpu_period=100000)
    assert cgroups._limits(unlimited, hierarchy)[1:] == [  # noqa: SLF001
        ("memory.swap.max", "max"), ("cpu.max", "max 100000")]
    # no processes may sit in a cgroup with controllers below it: the step's cgroup is a
    # sibling of ours, and the controllers it needs are enabled in the parent
    parent = hierarchy.mountpoint / "user.slice"
    cgroups._enable(parent, settings, hierarchy, "x", "--memory")  # noqa: SLF001
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +cpuset"


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (0, 100)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cgroups.shares_to_weight(shares) == weight


def test_cache_key_takes_what_changes_a_result() -> None:
    key = confinement.settings_key
    assert key(RunSettings(network="none")) == "none"
    assert key(RunSettings(memory=1, shm_size=2, cgroup_parent="/x", runtime="crun")) == ""
    a = key(RunSettings(volumes=(Volume.parse("/one:/cache"),)))
    assert a == key(RunSettings(volumes=(Volume.parse("/two:/cache"),)))
    assert a != key(RunSettings(volumes=(Volume.parse("/one:/cache:ro"),)))
    assert key(RunSettings(cap_add=("net_admin",))) == key(RunSettings(cap_add=("CAP_NET_ADMIN",)))
    assert key(RunSettings(pid="host")) != key(RunSettings())
    assert key(RunSettings(ulimits=(Ulimit.parse("nofile=5"),))) != key(RunSettings())

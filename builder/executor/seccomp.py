"""Seccomp profiles for RUN: loading, filtering by capability, and compiling to BPF.

As Buildah does, every step runs under the containers' default profile
(``/etc/containers/seccomp.json`` when present, else
``/usr/share/containers/seccomp.json``, both shipped by Debian's
golang-github-containers-common) unless ``--security-opt seccomp=unconfined`` or
``seccomp=PROFILE.json`` says otherwise; without a profile file and without a
request nothing is filtered.

A profile (Docker's and containers' JSON format: ``defaultAction``,
``defaultErrnoRet``, ``architectures`` or ``archMap``, ``syscalls`` with
``includes``/``excludes`` by capability, architecture and kernel) first becomes
the OCI runtime spec's ``linux.seccomp`` (``to_oci``), which is what runc gets
with ``--isolation oci``. For chroot isolation that is compiled to a classic BPF
program by libseccomp (``libseccomp.so.2``, Debian package libseccomp2, through
ctypes; ``compile_bpf``), once per build, and the sandbox installs the program
with ``prctl(PR_SET_SECCOMP)`` just before the step's command starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_names
import functools
import json
import os
import platform
from pathlib import Path
from typing import Any

from builder.errors import ConfinementError

__all__ = ["PROFILE_PATHS", "available", "compile_bpf", "default_profile", "load", "to_oci"]

PROFILE_PATHS = (Path("/etc/containers/seccomp.json"),
                 Path("/usr/share/containers/seccomp.json"))
UNCONFINED = "unconfined"

_ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
            "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
            "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
            "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# the machine -> (the profile's native architecture, Go's name used by includes.arches)
_NATIVE = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
           "s390x": ("SCMP_ARCH_S390X", "s390x"), "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
           "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"), "armv7l": ("SCMP_ARCH_ARM", "arm"),
           "i686": ("SCMP_ARCH_X86", "386")}


def default_profile() -> Path | None:
    """The profile steps get when none is asked for."""
    return next((p for p in PROFILE_PATHS if p.is_file()), None)


def load(path: Path) -> dict[str, Any]:
    """The profile at ``path`` (parsed once per version of the file)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfinementError(f"reading seccomp profile {path}: {exc.strerror}") from exc
    return _load(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime: int, size: int) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfinementError(f"reading seccomp profile {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfinementError(f"reading seccomp profile {path}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfinementError(f"reading seccomp profile {path}: not a JSON object")
    return data


def _kernel() -> tuple[int, ...]:
    numbers = []
    for part in platform.release().split("-")[0].split(".")[:2]:
        numbers.append(int(part) if part.isdigit() else 0)
    return tuple(numbers)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in text.split(".")[:2])


def _errno(name: object, default: int | None, where: str) -> int | None:
    if name in (None, ""):
        return default
    if isinstance(name, int):
        return name
    if isinstance(name, str) and name.isdigit():
        return int(name)
    value = getattr(errno_names, str(name), None)
    if not isinstance(value, int):
        raise ConfinementError(f"{where}: unknown errno {name!r}")
    return value


def to_oci(profile: dict[str, Any], capabilities: tuple[str, ...],
           where: str) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` for ``profile`` given the step's capabilities (rules
    whose ``includes``/``excludes`` do not fit are left out); None when the profile
    filters nothing (no default action and no rules)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    native_arch, go_arch = _NATIVE.get(platform.machine(), ("", platform.machine()))
    if profile.get("architectures") and profile.get("archMap"):
        raise ConfinementError(f"{where}: give either architectures or archMap, not both")
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native_arch:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or [])]
    kernel = _kernel()
    rules = []
    for call in profile.get("syscalls") or []:
        includes, excludes = call.get("includes") or {}, call.get("excludes") or {}
        if go_arch in (excludes.get("arches") or []):
            continue
        if any(cap in capabilities for cap in excludes.get("caps") or []):
            continue
        if includes.get("arches") and go_arch not in includes["arches"]:
            continue
        if any(cap not in capabilities for cap in includes.get("caps") or []):
            continue
        if includes.get("minKernel") and kernel < _version(includes["minKernel"]):
            continue
        names = call.get("names") or ([call["name"]] if call.get("name") else [])
        if not names:
            continue
        rule: dict[str, Any] = {"names": list(names), "action": call.get("action", "")}
        errno_ret = _errno(call.get("errno"), call.get("errnoRet"), where)
        if errno_ret is not None:
            rule["errnoRet"] = errno_ret
        if call.get("args"):
            rule["args"] = [{"index": a["index"], "value": a.get("value", 0),
                             "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                            for a in call["args"]]
        rules.append(rule)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW"),
                           "architectures": arches, "syscalls": rules}
    default_errno = _errno(profile.get("defaultErrno"), profile.get("defaultErrnoRet"), where)
    if default_errno is not None:
        out["defaultErrnoRet"] = default_errno
    return out


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@functools.cache
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise ConfinementError(
            "compiling the seccomp profile: libseccomp is not installed",
            hint="install the Debian package libseccomp2, or run with --security-opt "
                 "seccomp=unconfined") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def available() -> bool:
    """Whether libseccomp can be loaded."""
    try:
        _library()
    except ConfinementError:
        return False
    return True


def _action(name: str, errno_ret: int | None, where: str) -> int:
    if name not in _ACTIONS:
        raise ConfinementError(f"{where}: unsupported action {name!r}")
    value = _ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        value |= (errno_ret if errno_ret is not None else errno_names.EPERM) & 0xFFFF
    return value


def compile_bpf(config: dict[str, Any], where: str) -> bytes:
    """The classic BPF program (``struct sock_filter`` array) of an OCI
    ``linux.seccomp``, made by libseccomp."""
    return _compile(json.dumps(config, sort_keys=True), where)


@functools.lru_cache(maxsize=8)
def _compile(text: str, where: str) -> bytes:
    config = json.loads(text)
    lib = _library()
    default = _action(config["defaultAction"], config.get("defaultErrnoRet"), where)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise ConfinementError(f"{where}: libseccomp refused the default action")
    try:
        for arch in config.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(
                arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know
            result = lib.seccomp_arch_add(ctx, token)
            if result < 0 and -result != errno_names.EEXIST:
                raise ConfinementError(f"{where}: adding architecture {arch}: "
                                       f"{os.strerror(-result)}")
        for rule in config.get("syscalls") or []:
            action = _action(rule["action"], rule.get("errnoRet"), where)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default
            args = rule.get("args") or []
            conditions = [_ArgCmp(a["index"], _OPS[a["op"]], a.get("value", 0),
                                  a.get("valueTwo", 0)) for a in args]
            for name in rule["names"]:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == -1:
                    continue  # a system call this architecture does not have
                _add_rule(lib, ctx, action, number, conditions, args, where, name)
        read_fd, write_fd = os.pipe()
        try:
            result = lib.seccomp_export_bpf(ctx, write_fd)
            os.close(write_fd)
            write_fd = -1
            if result < 0:
                raise ConfinementError(f"{where}: exporting the filter: "
                                       f"{os.strerror(-result)}")
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(lib: ctypes.CDLL, ctx: int, action: int, number: int,
              conditions: list[_ArgCmp], args: list[dict[str, Any]], where: str,
              name: str) -> None:
    array = (_ArgCmp * len(conditions))(*conditions)
    result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
    if result == 0:
        return
    if (-result == errno_names.EINVAL and len(conditions) > 1
            and all(a["op"] == "SCMP_CMP_EQ" for a in args)):
        # several equality checks of one argument: meant as alternatives (Buildah's rule)
        for condition in conditions:
            one = (_ArgCmp * 1)(condition)
            result = lib.seccomp_rule_add_array(ctx, action, number, 1, one)
            if result < 0:
                break
        else:
            return
    raise ConfinementError(f"{where}: adding the rule for {name}: {os.strerror(-result)}")

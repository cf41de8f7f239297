"""Thin ``ctypes`` wrappers for the Linux calls the standard library lacks.

Every wrapper raises ``OSError`` with the errno, like the ``os`` module does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = [
    "MNT_DETACH", "MS_BIND", "MS_NODEV", "MS_NOEXEC", "MS_NOSUID", "MS_PRIVATE", "MS_RDONLY",
    "MS_REC", "MS_REMOUNT", "MS_SLAVE",
    "mount", "umount", "pivot_root", "unshare", "setns", "sethostname", "prctl", "capset",
    "syncfs", "attach_tree", "clone_tree", "idmapped_clone", "seccomp_filter",
]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_OPEN_TREE = 428  # the same number on every architecture (new system calls)
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2)."""
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount {target}",
    )


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def syncfs(path: str | os.PathLike[str]) -> None:
    """syncfs(2) on the file system holding ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.syncfs(fd), f"syncfs {path}")
    finally:
        os.close(fd)


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    """pivot_root(2)."""
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace ``fd`` refers to."""
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(
        _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                    ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)),
        "prctl",
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, 64-bit capability sets."""

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = _Header(0x20080522, 0)
    data = (_Data * 2)(
        _Data(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _Data(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def clone_tree(path: str) -> int:
    """A detached copy of the mount tree at ``path`` (open_tree OPEN_TREE_CLONE,
    recursive): an fd to attach with ``attach_tree``; its top mount is not locked."""
    return _check(_libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, _b(path),
                                _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE),
                  f"open_tree {path}")


def attach_tree(tree: int, path: str) -> None:
    """Mount the detached tree ``tree`` on ``path`` (move_mount)."""
    _check(_libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, _b(path),
                         _MOVE_MOUNT_F_EMPTY_PATH), f"move_mount {path}")


def idmapped_clone(path: str, userns_fd: int) -> None:
    """Replace the mount tree at ``path`` with a copy whose ids are mapped by the user
    namespace ``userns_fd`` (open_tree, mount_setattr with MOUNT_ATTR_IDMAP,
    move_mount; Linux 5.12 and a file system that supports idmapped mounts)."""

    class _MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    tree = clone_tree(path)
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(_libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                             ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
               f"idmapping {path}")
        attach_tree(tree, path)
    finally:
        os.close(tree)


def seccomp_filter(program: bytes) -> None:
    """Install a classic BPF seccomp filter (``struct sock_filter`` array) on the calling
    thread: prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)."""

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Program(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog))

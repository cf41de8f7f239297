"""The helper of a step run with chroot isolation, and the PID 1 it forks.

``builder.executor.sandbox`` starts ``python -m builder.executor.pid1`` with four pipe
descriptors (its config, errors, and the two directions of a sync channel) and writes
the step's config as JSON. The helper unshares mount, PID, IPC and UTS namespaces
(plus network, or joins one, unless the network is ``host``; a user namespace when
not root, whose ids the caller maps; the step's own user namespace with ``--userns``
id maps, the root then an idmapped mount; a cgroup namespace with ``--cgroupns
private``; or joins the namespaces given), reports when the caller must connect the
network, and forks the namespace's PID 1.

PID 1 pivots into the root, mounts a fresh ``/proc`` (``MASKED_PROC`` hidden,
``READONLY_PROC`` read-only), a minimal ``/dev`` on tmpfs with the ``--device``
nodes, read-only ``/sys`` and the step's cgroup, the generated ``/etc/hosts``,
``/etc/resolv.conf`` and ``/etc/hostname`` and the step's mounts, then forks the
command with the resolved user, its capabilities, rlimits, AppArmor profile and
seccomp filter. When the command exits PID 1 kills whatever it left behind,
unmounts, removes every mount point it had to create (restoring the parents'
mtimes) and exits with the command's status (128+N for signal N). Mount points
therefore never reach a layer, and an image without ``/etc`` does not gain one.

Every import is at the top: after ``pivot_root`` the host's library path is gone.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any

from builder.rootfs import syscalls
from builder.rootfs.paths import resolve_in_root

__all__ = ["MASKED_PROC", "READONLY_PROC"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_NAMESPACE_FLAGS = {"pid": _CLONE_NEWPID, "ipc": _CLONE_NEWIPC, "uts": _CLONE_NEWUTS,
                    "cgroup": _CLONE_NEWCGROUP, "net": _CLONE_NEWNET}
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_OLD_ROOT = "/.pybuild-oldroot"
_STAGE = "/.pybuild-stage"
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
READONLY_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
MASKED_PROC = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")


# --- the helper process: python -m builder.executor.pid1 CONFIG ERR SYNC_W SYNC_R


def _helper(config_fd: int, err_fd: int, sync_w: int, sync_r: int) -> int:
    with os.fdopen(config_fd) as pipe:
        config = json.load(pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    namespaces: dict[str, str] = config["namespaces"]
    joins: dict[str, int] = {}
    action = "creating namespaces"
    try:
        syscalls.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for kind, value in namespaces.items():
            if value.startswith("/"):
                action = f"opening {kind} namespace {value}"
                joins[kind] = os.open(value, os.O_RDONLY | os.O_CLOEXEC)
        action = "creating namespaces"
        if config["rootless"]:
            syscalls.unshare(_CLONE_NEWUSER)
            os.write(sync_w, b"u")
            if os.read(sync_r, 1) != b"k":
                return 125
        user = config["user"]
        user_fd = -1
        if user is not None:
            action = "creating the step's user namespace"
            user_fd = (os.open(user["path"], os.O_RDONLY | os.O_CLOEXEC) if user["path"]
                       else _new_userns(user))
            if not user["identity"]:
                action = "mapping the root's ids for the step's user namespace"
                syscalls.unshare(_CLONE_NEWNS)
                syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
                try:
                    syscalls.idmapped_clone(config["root"], user_fd)
                except OSError as exc:
                    os.write(err_fd, _idmap_error(exc).encode())
                    return 125
                # entered now: the step's root may not pass the directories above it
                os.chdir(config["root"])
                config["root_ready"] = True
        for kind, fd in joins.items():
            action = f"joining {kind} namespace {namespaces[kind]}"
            syscalls.setns(fd, _NAMESPACE_FLAGS[kind])
            os.close(fd)
        if user_fd >= 0:
            action = "entering the step's user namespace"
            syscalls.setns(user_fd, _CLONE_NEWUSER)
            os.close(user_fd)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        action = "creating namespaces"
        flags = _CLONE_NEWNS
        for kind, value in namespaces.items():
            if value == "new":
                flags |= _NAMESPACE_FLAGS[kind]
        syscalls.unshare(flags)
        if config["stack"]:  # the caller connects our network namespace, then says go
            os.write(sync_w, b"n")
            if os.read(sync_r, 1) != b"g":
                return 125
    except OSError as exc:
        os.write(err_fd, f"{action}: {exc.strerror or exc}".encode())
        return 125
    finally:
        os.close(sync_w)
        os.close(sync_r)
    pid = os.fork()
    if pid == 0:
        try:
            code = _Init(config, err_fd).run()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(err_fd, str(exc).encode() or type(exc).__name__.encode())
            code = 125
        os._exit(code)
    os.close(err_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _idmap_error(exc: OSError) -> str:
    why = {errno.EINVAL: "the root's file system cannot be idmapped (an overlay cannot be: "
                         "use --storage-driver vfs for a step with id maps)",
           errno.EPERM: "an ordinary user cannot idmap files of the host's file system",
           errno.ENOSYS: "this kernel has no idmapped mounts (Linux 5.12 or later)"}
    return (f"giving the step its own id maps (--userns-uid-map, --userns-gid-map): "
            f"{why.get(exc.errno or 0, exc.strerror or str(exc))}")


def _new_userns(user: dict[str, Any]) -> int:
    """A user namespace with the step's id maps (written by us, its parent); its fd."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            syscalls.unshare(_CLONE_NEWUSER)
            os.write(ready_w, b"x")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"x":
            raise OSError(errno.EPERM, "unshare failed")
        for kind in ("uid", "gid"):
            lines = "".join(f"{c} {h} {n}\n" for c, h, n in user[f"{kind}_map"])
            with open(f"/proc/{child}/{kind}_map", "wb") as f:
                f.write(lines.encode())
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(child, 0)


class _Init:
    """PID 1 of the step's PID namespace (with ``--pid host`` or a joined namespace, a
    subreaper that ends its descendants instead)."""

    def __init__(self, config: dict, err_fd: int) -> None:  # type: ignore[type-arg]
        self.sys = syscalls
        self.config = config
        self.err_fd = err_fd
        self.created: list[tuple[str, bool]] = []  # (path, is_dir), in creation order
        self.parent_times: dict[str, tuple[int, int]] = {}
        self.mounted: list[str] = []
        self.setup_mtimes: dict[str, int] = {}

    def run(self) -> int:
        self.sys.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        own_pids = self.config["namespaces"]["pid"] == "new"
        if not own_pids:
            self.sys.prctl(_PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.setup()
        except BaseException:
            self.cleanup()
            raise
        os.set_inheritable(self.err_fd, False)
        pid = os.fork()
        if pid == 0:
            self.exec_command()
        os.close(self.err_fd)
        code = 125
        while True:
            child, status = os.waitpid(-1, 0)
            if child == pid:
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                break
        if own_pids:
            try:
                os.kill(-1, signal.SIGKILL)  # everything the step left running
            except ProcessLookupError:
                pass
        else:
            _kill_descendants()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        self.cleanup()
        return code

    # setup

    @staticmethod
    def inside(path: str) -> str:
        """``path`` as the container sees it, symlinks resolved inside the new root, never
        into the host's root (mounted at ``_OLD_ROOT`` while mounts are set up) or the
        staging directory: an image's link to either is refused."""
        resolved = resolve_in_root(Path("/"), path)
        first = resolved.parts[1] if len(resolved.parts) > 1 else ""
        if "/" + first in (_OLD_ROOT, _STAGE):
            raise OSError(errno.EPERM, f"mount point {path} leads into /{first}, which the "
                                       "sandbox uses while it sets up")
        return os.fspath(resolved)

    @staticmethod
    def own_dir(path: str) -> bool:
        """Make the sandbox's own directory ``path`` (False), or find it a real directory
        (True); anything else the image put there (a symlink) is refused."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o700)
            return False
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EPERM, f"the image has {path}, which the sandbox needs")
        return True

    def point(self, path: str, is_dir: bool) -> bool:
        """Make sure a mount point exists (``path`` resolved by ``inside``), remembering what
        we created."""
        parts = [p for p in path.split("/") if p]
        current = ""
        for index, part in enumerate(parts):
            current += "/" + part
            last = index == len(parts) - 1
            if os.path.lexists(current):
                if os.path.islink(current):
                    return False  # resolved already: a link here is nothing safe to mount on
                continue
            parent = os.path.dirname(current)
            st = os.stat(parent)
            self.parent_times.setdefault(parent, (st.st_atime_ns, st.st_mtime_ns))
            if last and not is_dir:
                os.close(os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            else:
                os.mkdir(current, 0o755)
            self.created.append((current, not last or is_dir))
        return True

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self.sys.mount(source, target, fstype, flags, data)
        self.mounted.append(target)

    def bind(self, source: str, target: str, readonly: bool, recursive: bool = False,
             options: tuple[str, ...] = ()) -> None:
        """Bind ``source`` on ``target``; ``options`` may add nosuid, nodev, noexec."""
        s = self.sys
        self.mount(source, target, None, s.MS_BIND | (s.MS_REC if recursive else 0))
        extra = sum(flag for name, flag in (("nosuid", s.MS_NOSUID), ("nodev", s.MS_NODEV),
                                            ("noexec", s.MS_NOEXEC)) if name in options)
        if readonly or extra:
            vfs = os.statvfs(target)
            keep = sum(flag for bit, flag in ((os.ST_NOSUID, s.MS_NOSUID),
                                               (os.ST_NODEV, s.MS_NODEV),
                                               (os.ST_NOEXEC, s.MS_NOEXEC),
                                               (os.ST_RDONLY, s.MS_RDONLY))
                       if vfs.f_flag & bit)
            s.mount(None, target, None, s.MS_REMOUNT | s.MS_BIND | keep | extra
                    | (s.MS_RDONLY if readonly else 0))

    def setup(self) -> None:
        s, config = self.sys, self.config
        root = config["root"]
        s.mount(None, "/", None, s.MS_REC | s.MS_PRIVATE)
        if config.get("root_ready"):  # an idmapped root we are in, whose parents the
            tree = s.clone_tree(".")    # step's root may not pass: a fresh (unlocked) copy
            s.attach_tree(tree, ".")    # of it on itself, entered through its fd
            os.fchdir(tree)
            os.close(tree)
        else:
            s.mount(root, root, None, s.MS_BIND | s.MS_REC)
            os.chdir(root)
        st = os.stat(".")
        self.parent_times["/"] = (st.st_atime_ns, st.st_mtime_ns)
        # relative: an idmapped root is entered by its fd, its absolute path not walkable
        if not self.own_dir("." + _OLD_ROOT):
            self.created.append((_OLD_ROOT, True))
        s.pivot_root(".", _OLD_ROOT.lstrip("/"))
        os.chdir("/")
        old = _OLD_ROOT
        proc = self.inside("/proc")
        self.point(proc, True)
        try:
            self.mount("proc", proc, "proc", s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)
        except OSError:  # a PID namespace this user namespace does not own (--pid host)
            self.bind(old + "/proc", proc, readonly=False, recursive=True)
        self.setup_dev(old)
        sys_dir = self.inside("/sys")
        self.point(sys_dir, True)
        try:
            self.mount("sysfs", sys_dir, "sysfs",
                       s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)
        except OSError:
            self.bind(old + "/sys", sys_dir, readonly=True, recursive=True)
        self.setup_cgroups(old)
        if not self.own_dir(_STAGE):
            self.created.append((_STAGE, True))
        self.mount("tmpfs", _STAGE, "tmpfs", s.MS_NOSUID | s.MS_NODEV, "mode=700")
        for name, data in config["files"].items():
            target = self.inside(name)
            if os.path.isdir(os.path.dirname(target)) or self.point(os.path.dirname(target), True):
                self.stage_file(target, base64.b64decode(data), readonly=False)
        for mount in config["mounts"]:
            self.setup_mount(mount, old)
        for path in MASKED_PROC:
            if os.path.exists(path):
                self.mount("/dev/null", path, None, s.MS_BIND)
        for path in READONLY_PROC:
            if os.path.exists(path):
                self.bind(path, path, readonly=True, recursive=True)
        s.umount(_STAGE, s.MNT_DETACH)
        s.umount(old, s.MNT_DETACH)
        self.mounted = [m for m in self.mounted if m != _STAGE]
        if config["namespaces"]["uts"] == "new":
            s.sethostname(config["hostname"])
        if config["namespaces"]["net"] == "new":
            _loopback_up()
        os.makedirs(config["cwd"], 0o755, exist_ok=True)
        self.setup_mtimes = {p: os.stat(p).st_mtime_ns for p in self.parent_times}

    def stage_file(self, target: str, data: bytes, readonly: bool, uid: int = 0, gid: int = 0,
                   mode: int = 0o644) -> None:
        if not self.point(target, False):
            return
        staged = f"{_STAGE}/{len(self.mounted)}"
        with open(staged, "wb") as f:
            f.write(data)
        os.chown(staged, uid, gid)
        os.chmod(staged, mode)
        self.bind(staged, target, readonly=readonly)

    def setup_dev(self, old: str) -> None:
        s = self.sys
        if self.inside("/dev") != "/dev":
            raise OSError(errno.EPERM, "the image's /dev is a symlink")
        self.point("/dev", True)
        self.mount("tmpfs", "/dev", "tmpfs", s.MS_NOSUID, "mode=755,size=65536k")
        for name in _DEVICES:
            os.close(os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
            s.mount(f"{old}/dev/{name}", f"/dev/{name}", None, s.MS_BIND)
        os.mkdir("/dev/pts", 0o755)
        options = "newinstance,ptmxmode=0666,mode=0620"
        try:
            s.mount("devpts", "/dev/pts", "devpts", s.MS_NOSUID | s.MS_NOEXEC, options + ",gid=5")
        except OSError:
            s.mount("devpts", "/dev/pts", "devpts", s.MS_NOSUID | s.MS_NOEXEC, options)
        os.symlink("pts/ptmx", "/dev/ptmx")
        os.mkdir("/dev/shm", 0o1777)
        if self.config["namespaces"]["ipc"] == "host":  # the host's shared memory
            s.mount(f"{old}/dev/shm", "/dev/shm", None, s.MS_BIND | s.MS_REC)
        else:
            s.mount("shm", "/dev/shm", "tmpfs", s.MS_NOSUID | s.MS_NODEV,
                    f"mode=1777,size={self.config['shm']}")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                             ("core", "/proc/kcore")):
            os.symlink(target, f"/dev/{name}")
        for device in self.config["devices"]:  # --device: the host's node, bound
            target = self.inside(device["target"])
            if not self.point(target, False):
                raise OSError(errno.ENOENT, f"device target {device['target']} is a dangling "
                              "symlink")
            self.mount(old + device["source"], target, None, s.MS_BIND)

    def setup_cgroups(self, old: str) -> None:
        """The step's cgroup, read-only at /sys/fs/cgroup (v2) or /sys/fs/cgroup/NAME (v1)."""
        s = self.sys
        mounts = self.config.get("cgroup_mounts") or []
        if not mounts or not os.path.isdir("/sys/fs/cgroup"):
            return
        if len(mounts) == 1 and mounts[0][0] == "":
            self.bind(old + mounts[0][1], "/sys/fs/cgroup", readonly=True)
            return
        self.mount("cgroup", "/sys/fs/cgroup", "tmpfs", s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC,
                   "mode=755")
        for name, host in mounts:
            os.mkdir(f"/sys/fs/cgroup/{name}", 0o755)
            self.bind(old + host, f"/sys/fs/cgroup/{name}", readonly=True)
        s.mount(None, "/sys/fs/cgroup", None,
                s.MS_REMOUNT | s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)

    def setup_mount(self, mount: dict, old: str) -> None:  # type: ignore[type-arg]
        s, kind, target = self.sys, mount["type"], mount["target"]
        if target:
            target = self.inside(target)
        if kind == "secret":
            if target:
                mode = 0o400 if mount["mode"] is None else mount["mode"]
                self.stage_file(target, base64.b64decode(mount["data"]), True,
                                mount["uid"] or 0, mount["gid"] or 0, mode)
            return
        if kind == "tmpfs":
            self.point(target, True)
            options = [f"mode={mount['mode']:o}" if mount["mode"] is not None else "mode=1777"]
            if mount["size"]:
                options.append(f"size={mount['size']}")
            self.mount("tmpfs", target, "tmpfs", s.MS_NOSUID | s.MS_NODEV, ",".join(options))
            return
        source = old + mount["source"]
        if not self.point(target, os.path.isdir(source)):
            raise OSError(errno.ENOENT, f"mount target {target} is a dangling symlink")
        self.bind(source, target, readonly=mount["readonly"],
                  recursive="bind" not in mount["options"], options=tuple(mount["options"]))

    # the command

    def exec_command(self) -> None:
        config = self.config
        action = "preparing to run"
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            for number, soft, hard, text in config["rlimits"]:  # while we may raise them
                action = f"setting --ulimit {text}"
                try:
                    resource.setrlimit(number, (soft, hard))
                except ValueError as exc:
                    raise OSError(errno.EPERM, f"{exc} (the current hard limit is "
                                  f"{resource.getrlimit(number)[1]}; raising it needs "
                                  "root with CAP_SYS_RESOURCE)") from None
            action = "preparing to run"
            keep = config["caps"]
            last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
            for cap in range(last + 1):
                if not keep & (1 << cap):
                    self.sys.prctl(_PR_CAPBSET_DROP, cap)
            self.sys.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
            try:
                os.setgroups(config["groups"])
            except PermissionError:  # a single-id map denies setgroups
                if not config["userns"]:
                    raise
            os.setresgid(config["gid"], config["gid"], config["gid"])
            if config["apparmor"]:
                action = f"applying AppArmor profile {config['apparmor']}"
                _apparmor_exec(config["apparmor"])
            if config["seccomp"]:  # after this only what the profile allows
                action = "installing the seccomp filter"
                self.sys.seccomp_filter(base64.b64decode(config["seccomp"]))
            action = "preparing to run"
            os.setresuid(config["uid"], config["uid"], config["uid"])
            if config["uid"] == 0:
                self.sys.capset(keep, keep, 0)
            if config["nnp"]:
                self.sys.prctl(_PR_SET_NO_NEW_PRIVS, 1)
            os.chdir(config["cwd"])
        except OSError as exc:
            os.write(2, f"pybuild: {action}: {exc.strerror or exc}\n".encode())
            os._exit(125)
        env = dict(item.partition("=")[::2] for item in config["env"])
        argv = config["argv"]
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"pybuild: running {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127 if exc.errno == errno.ENOENT else 126)

    # teardown

    def cleanup(self) -> None:
        """Unmount, remove created mount points, restore mtimes the step left alone."""
        s = self.sys
        touched = set()
        for parent, mtime in self.setup_mtimes.items():
            try:
                if os.stat(parent).st_mtime_ns != mtime:
                    touched.add(parent)
            except OSError:
                touched.add(parent)
        for target in reversed(self.mounted):
            try:
                s.umount(target, s.MNT_DETACH)
            except OSError:
                pass
        for path, is_dir in reversed(self.created):
            if path == _OLD_ROOT:
                continue
            try:
                os.rmdir(path) if is_dir else os.unlink(path)
            except OSError:
                pass
        try:
            os.rmdir(_OLD_ROOT)
        except OSError:
            pass
        for parent, times in self.parent_times.items():
            if parent in touched:
                continue
            try:
                os.utime(parent, ns=times, follow_symlinks=False)
            except OSError:
                pass


def _kill_descendants() -> None:
    """SIGKILL every process below this one, until none is left (we are a subreaper, so
    orphans come back to us)."""
    while True:
        found = []
        pending = [os.getpid()]
        while pending:
            pid = pending.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                try:  # binary: no codec can be loaded after pivot_root
                    with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                        children = [int(c) for c in f.read().split()]
                except (OSError, ValueError):
                    continue
                found += children
                pending += children
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)  # at least one gone; the rest are found again or reaped later
        except ChildProcessError:
            pass


def _apparmor_exec(profile: str) -> None:
    """Have the next execve enter AppArmor ``profile``."""
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            with open(path, "wb") as f:
                f.write(f"exec {profile}".encode())
            return
        except FileNotFoundError:
            continue


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


if __name__ == "__main__":
    sys.exit(_helper(*(int(arg) for arg in sys.argv[1:5])))

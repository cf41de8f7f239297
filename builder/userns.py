"""The user namespace rootless pybuild works in.

An ordinary user cannot give files other owners, mount an overlay or create
most device nodes. As Buildah does (``buildah unshare``), every command that
touches the store first moves the process into a new user namespace and a new
mount namespace in which it is root (``enter()``):

* namespace uid 0 is the caller's uid, and uids 1..N are the caller's
  subordinate ids from ``/etc/subuid``, written by the setuid helper
  ``newuidmap`` (which checks the ranges); the same for gids with
  ``/etc/subgid`` and ``newgidmap``;
* without ranges (or without the helpers) root is the only id: the single-id
  map. Files owned by any other id then fail with ``IdMapError``, which names
  the file and the id and says how to widen the ranges; nothing is silently
  given another owner.

The process unshares in place rather than re-executing itself: at the start of
``builder.cli.main`` it has no threads, so unshare(2) is allowed, and a forked
helper that is still outside runs ``newuidmap``/``newgidmap`` on it. That costs
one fork and the two helpers (a few milliseconds) instead of a second
interpreter start, and keeps what the process already began (the rebuild
record ``builder.replay`` opened, keyed by the caller's own uid).

What children need is exported in the environment: ``_PYBUILD_USERNS_CONFIGURED``
and the caller's ids, so that a nested ``pybuild`` (``pybuild unshare``) knows
it is rootless although it is uid 0, and keeps the caller's store
(``$XDG_DATA_HOME/pybuild``) and runtime directory (``$XDG_RUNTIME_DIR/pybuild``).

The network namespace is not unshared. A RUN step's network namespace is a
child of this user namespace, and user-mode network helpers (slirp4netns,
pasta) started from here still have the host's network while being root in the
step namespace's owner, so they may join it (``setns``).

Mounts made here (overlay workspaces) vanish with the namespace, that is with
the process: an ordinary user's ``pybuild mount`` therefore works inside
``pybuild unshare`` only, as with Buildah.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from builder.errors import IdMapError, SandboxError

__all__ = [
    "ENV_CONFIGURED", "IdRange", "caller_ids", "describe_maps", "enter", "id_map", "inside",
    "owner_error", "rootless", "runtime_dir", "subordinate_ranges", "transient",
]

ENV_CONFIGURED = "_PYBUILD_USERNS_CONFIGURED"
ENV_UID = "_PYBUILD_ROOTLESS_UID"
ENV_GID = "_PYBUILD_ROOTLESS_GID"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_IDENTITY = [(0, 0, 4294967295)]

IdRange = tuple[int, int, int]  # first id inside, first id outside, count


_entered = False


def transient() -> bool:
    """Whether this process made its user namespace itself (``enter()``), so that its
    mounts vanish when it exits."""
    return _entered


def rootless() -> bool:
    """Whether pybuild runs for an ordinary user (outside its namespace, or inside it)."""
    return os.geteuid() != 0 or bool(os.environ.get(ENV_CONFIGURED))


@functools.cache
def inside() -> bool:
    """Whether this process is in a user namespace other than the initial one (ours or
    another runtime's): device nodes cannot be created and only mapped ids exist."""
    return id_map("uid") != _IDENTITY


def id_map(kind: str) -> list[IdRange]:
    """This process's ``uid`` or ``gid`` map (the identity map outside namespaces)."""
    try:
        with open(f"/proc/self/{kind}_map", encoding="ascii") as f:
            lines = f.read().split("\n")
    except OSError:
        return list(_IDENTITY)
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            out.append((int(fields[0]), int(fields[1]), int(fields[2])))
    return out


def caller_ids() -> tuple[int, int]:
    """The invoking user's uid and gid as the host knows them."""
    if os.environ.get(ENV_CONFIGURED):
        try:
            return int(os.environ[ENV_UID]), int(os.environ[ENV_GID])
        except (KeyError, ValueError):
            pass
    return os.geteuid(), os.getegid()


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def subordinate_ranges(path: str, name: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges ``path`` (/etc/subuid or /etc/subgid) gives the user
    ``name`` (or its uid), in file order."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.strip().split(":")
        if (len(parts) == 3 and parts[0] in (name, str(uid)) and parts[1].isdigit()
                and parts[2].isdigit() and int(parts[2]) > 0):
            out.append((int(parts[1]), int(parts[2])))
    return out


def _threads() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 1


def enter() -> bool:
    """Move this process into a new user and mount namespace where it is root, unless it
    is root already; True when it did. Raises SandboxError when that is impossible."""
    if os.geteuid() == 0:
        return False
    from builder.rootfs import syscalls

    uid, gid = os.geteuid(), os.getegid()
    commands = newidmap_commands(os.getpid(), uid, gid)
    if _threads() > 1:
        raise SandboxError(
            "entering a user namespace: the process already runs threads",
            hint="call builder.userns.enter() before starting threads, or run the program "
                 "under 'pybuild unshare'")
    helper = _MapHelper(os.getpid(), commands) if commands else None
    try:
        syscalls.unshare(_CLONE_NEWUSER | _CLONE_NEWNS)
    except OSError as exc:
        if helper is not None:
            helper.finish(go=False)
        raise SandboxError(
            f"entering a user namespace: {exc.strerror}",
            hint="unprivileged user namespaces may be disabled (sysctl "
                 "kernel.unprivileged_userns_clone, user.max_user_namespaces)") from exc
    failure = helper.finish(go=True) if helper is not None else ""
    if failure:
        sys.stderr.write(f"WARN[0000] mapping subordinate ids: {failure}; only uid {uid} and "
                         f"gid {gid} are mapped (to 0)\n")
    try:
        _single_maps(uid, gid)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    except OSError as exc:
        raise SandboxError(f"entering a user namespace: {exc}") from exc
    global _entered
    _entered = True
    inside.cache_clear()
    os.environ[ENV_CONFIGURED] = "1"
    os.environ[ENV_UID] = str(uid)
    os.environ[ENV_GID] = str(gid)
    return True


def newidmap_commands(pid: int, uid: int, gid: int) -> list[list[str]]:
    """The ``newuidmap`` and ``newgidmap`` command lines that map root in ``pid``'s user
    namespace to ``uid``/``gid`` and the user's subordinate ranges after it; empty when
    the user has no ranges or the tools are missing (then only root can be mapped)."""
    name = _user_name(uid)
    subuids = subordinate_ranges("/etc/subuid", name, uid)
    subgids = subordinate_ranges("/etc/subgid", name, uid)
    tools = shutil.which("newuidmap"), shutil.which("newgidmap")
    if not (subuids and subgids and tools[0] and tools[1]):
        return []
    return [[tools[0], str(pid), "0", str(uid), "1", *_ranges_args(subuids)],
            [tools[1], str(pid), "0", str(gid), "1", *_ranges_args(subgids)]]


def _ranges_args(ranges: list[tuple[int, int]]) -> list[str]:
    """newuidmap's "inside outside count" triples: the ranges follow one another from 1."""
    args, inside_id = [], 1
    for start, count in ranges:
        args += [str(inside_id), str(start), str(count)]
        inside_id += count
    return args


def _single_maps(uid: int, gid: int) -> None:
    """Map root to the caller where the helpers did not write a map (setgroups is then
    denied, as the kernel requires of an unprivileged gid map)."""
    if not id_map("uid"):
        with open("/proc/self/uid_map", "w", encoding="ascii") as f:
            f.write(f"0 {uid} 1")
    if not id_map("gid"):
        with open("/proc/self/setgroups", "w", encoding="ascii") as f:
            f.write("deny")
        with open("/proc/self/gid_map", "w", encoding="ascii") as f:
            f.write(f"0 {gid} 1")


class _MapHelper:
    """A forked process, left outside the new namespace, that runs ``newuidmap`` and
    ``newgidmap`` on its parent once the parent has unshared."""

    def __init__(self, target: int, commands: list[list[str]]) -> None:
        go_r, self.go_w = os.pipe()
        self.done_r, done_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the helper: never returns
            code = 1
            try:
                os.close(self.go_w)
                os.close(self.done_r)
                if os.read(go_r, 1) == b"g":
                    procs = [subprocess.Popen(command, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)
                             for command in commands]  # both at once
                    errors = []
                    for command, proc in zip(commands, procs):
                        output = proc.communicate()[0]
                        if proc.returncode != 0:
                            errors.append(f"{os.path.basename(command[0])}: {output.strip()}")
                    os.write(done_w, "; ".join(errors).encode()[:4000] or b"ok")
                code = 0
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(done_w)

    def finish(self, go: bool) -> str:
        """Let the helper map (or stop it); what went wrong, or ""."""
        try:
            os.write(self.go_w, b"g" if go else b"x")
            os.close(self.go_w)
            reply = b""
            while chunk := os.read(self.done_r, 4096):
                reply += chunk
        finally:
            os.close(self.done_r)
            os.waitpid(self.pid, 0)
        if not go or reply == b"ok":
            return ""
        return reply.decode(errors="replace") or "the helper failed"


def describe_maps() -> dict[str, list[IdRange]]:
    return {"uid": id_map("uid"), "gid": id_map("gid")}


def _mapped(value: int, ranges: list[IdRange]) -> bool:
    return any(first <= value < first + count for first, _, count in ranges)


def _span(ranges: list[IdRange]) -> str:
    """The ids inside, adjacent ranges joined: "0-65536"."""
    spans: list[list[int]] = []
    for first, _, count in sorted(ranges):
        if spans and spans[-1][1] + 1 == first:
            spans[-1][1] = first + count - 1
        else:
            spans.append([first, first + count - 1])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans) or "none"


def owner_error(action: str, path: str, uid: int, gid: int) -> IdMapError:
    """The error for a file (``path`` as the image sees it) whose owner ``uid:gid`` this
    namespace cannot represent; ``action`` is what was being attempted."""
    uids, gids = id_map("uid"), id_map("gid")
    missing = []
    if not _mapped(uid, uids):
        missing.append(f"uid {uid}")
    if not _mapped(gid, gids):
        missing.append(f"gid {gid}")
    what = " and ".join(missing) or f"{uid}:{gid}"
    host_uid, _ = caller_ids()
    user = _user_name(host_uid)
    need = max(uid, gid)  # ids 1..N come from N subordinate ids
    return IdMapError(
        f"{action}: {path!r} is owned by {what}, outside the ids this user namespace maps "
        f"(uids {_span(uids)}, gids {_span(gids)})",
        hint=f"give {user} at least {need} subordinate ids in /etc/subuid and /etc/subgid, "
             f"for example: usermod --add-subuids 100000-{100000 + max(need, 65536) - 1} "
             f"--add-subgids 100000-{100000 + max(need, 65536) - 1} {user}")


def runtime_dir(*, create: bool = True) -> Path:
    """Where volatile per-user state goes: ``/run/pybuild`` for root, else
    ``$XDG_RUNTIME_DIR/pybuild`` (or ``/tmp/pybuild-run-UID`` without XDG_RUNTIME_DIR).
    With ``create``, it is made private to the user if missing, and SandboxError is
    raised when it is not the user's own."""
    import stat

    if not rootless():
        path = Path("/run/pybuild")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "pybuild"
    else:
        path = Path(f"/tmp/pybuild-run-{caller_ids()[0]}")
    if not create:
        return path
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise SandboxError(f"making runtime directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SandboxError(f"using runtime directory {path}: it is not a directory of this "
                           "user's own")
    return path

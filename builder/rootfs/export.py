"""``bud --output``: a built root file system exported to a directory or a tar archive.

``type=local,dest=DIR`` (or just ``DIR``) copies the tree into DIR, which is
created when missing (a build for several platforms writes DIR/OS_ARCH[_VARIANT]
each, as BuildKit does); ``type=tar,dest=FILE`` writes a tar archive, ``dest=-`` (or
``-o -`` alone) to stdout. The destination is written through directory file
descriptors and ``O_NOFOLLOW``: an entry already in DIR that is in the way (a
symlink to somewhere else included) is replaced, never followed, so nothing is
written outside DIR. Modes, owners (as root), mtimes, symlinks, hard links and
FIFOs are kept; device nodes are made only as root. As in Buildah, an unprivileged
caller (rootless pybuild included: root of its user namespace is the user outside)
gets setuid and setgid bits stripped and files owned by itself.

The syntax is Buildah's (``parse.GetBuildOutput``), which is BuildKit's for these
two types.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from builder import userns
from builder.errors import ExportError, UsageError

__all__ = ["OutputSpec", "export_root", "parse_output"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class OutputSpec:
    """Where ``--output`` sends the root: ``type`` local or tar; ``dest`` a directory,
    a file, or ``-`` for stdout."""

    type: str
    dest: str
    stream: BinaryIO | None = field(default=None, compare=False)  # for dest "-"
    per_platform: bool = False  # several platforms: one subdirectory each (BuildKit's)

    @property
    def to_stdout(self) -> bool:
        return self.dest == "-"

    def for_platform(self, platform: object) -> OutputSpec:
        """Where one platform's root goes: DEST itself, or with several platforms
        DEST/OS_ARCH[_VARIANT] as BuildKit's local exporter names them."""
        if not self.per_platform:
            return self
        parts = [getattr(platform, "os", ""), getattr(platform, "architecture", ""),
                 getattr(platform, "variant", "")]
        return OutputSpec(self.type, os.path.join(self.dest, "_".join(p for p in parts if p)))


def parse_output(text: str) -> OutputSpec:
    """``DIR``, ``-``, or ``type=local|tar,dest=PATH`` as Buildah parses ``--output``."""
    if text == "-":
        return OutputSpec("tar", "-")
    if "," not in text and not text.startswith(("type=", "dest=")):
        if not text:
            raise UsageError("parsing --output: empty destination")
        return OutputSpec("local", text)
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"parsing --output {text!r}: expected key=value, not {part!r}")
        if key not in ("type", "dest"):
            raise UsageError(f"parsing --output {text!r}: unknown key {key!r} "
                             "(accepted: type, dest)")
        if key in fields:
            raise UsageError(f"parsing --output {text!r}: {key} given twice")
        fields[key] = value
    if "type" not in fields or "dest" not in fields:
        raise UsageError(f"parsing --output {text!r}: type= and dest= are both required")
    if fields["type"] not in ("local", "tar"):
        raise UsageError(f"parsing --output {text!r}: unknown type {fields['type']!r} "
                         "(accepted: local, tar)")
    if not fields["dest"]:
        raise UsageError(f"parsing --output {text!r}: empty destination")
    if fields["type"] == "local" and fields["dest"] == "-":
        raise UsageError(f"parsing --output {text!r}: type=local cannot write to stdout; "
                         "use type=tar")
    return OutputSpec(fields["type"], fields["dest"])


def export_root(root: Path, spec: OutputSpec) -> None:
    """Write the tree at ``root`` where ``spec`` says."""
    where = "stdout" if spec.to_stdout else spec.dest
    try:
        if spec.type == "local":
            _export_local(Path(root), Path(spec.dest).absolute())
        elif spec.to_stdout:
            if spec.stream is None:
                raise ExportError("exporting to stdout: no stdout")
            _export_tar(Path(root), spec.stream)
            spec.stream.flush()
        else:
            dest = Path(spec.dest).absolute()
            tmp = dest.with_name(f".{dest.name}.pybuild-tmp")
            try:
                with open(tmp, "wb") as out:
                    _export_tar(Path(root), out)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        name = f" {exc.filename}" if exc.filename else ""
        raise ExportError(f"exporting the root file system to {where}:{name} "
                          f"{exc.strerror or exc}") from exc


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``root`` (relative path, lstat), parents first, each
    directory's entries in name order; links are never followed."""
    pending = [""]
    while pending:
        rel = pending.pop()
        below: list[str] = []
        for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, child))
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                below.append(child)
        pending.extend(reversed(below))


def _privileged() -> bool:
    """Whether the caller is really root: not root of a user namespace (rootless pybuild
    runs its builds in one), where the files written belong to the user outside."""
    return os.geteuid() == 0 and not userns.inside()


def _mode(st: os.stat_result, privileged: bool) -> int:
    mode = stat.S_IMODE(st.st_mode)
    return mode if privileged else mode & ~(stat.S_ISUID | stat.S_ISGID)


# a directory


class _LocalWriter:
    """Creates entries below an open destination directory, one level at a time,
    replacing whatever is in the way without following it."""

    def __init__(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        self.privileged = _privileged()
        self.fds: dict[str, int] = {"": self.root_fd}
        self.dirs: list[tuple[str, os.stat_result]] = []
        self.links: dict[tuple[int, int], str] = {}
        self.skipped: list[str] = []

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def parent(self, rel: str) -> tuple[int, str]:
        head, _, name = rel.rpartition("/")
        return self.fds[head], name

    def clear(self, fd: int, name: str, keep_dir: bool = False) -> None:
        """Remove ``name`` unless it is absent (or a real directory and ``keep_dir``)."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)

    def add(self, source: str, rel: str, st: os.stat_result) -> None:
        fd, name = self.parent(rel)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            self.clear(fd, name, keep_dir=True)
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            self.fds[rel] = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                    dir_fd=fd)
            self.dirs.append((rel, st))
            return
        self.clear(fd, name)
        if st.st_nlink > 1 and kind != stat.S_IFDIR:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, name, src_dir_fd=self.root_fd, dst_dir_fd=fd,
                        follow_symlinks=False)
                return
            self.links[(st.st_dev, st.st_ino)] = rel
        if kind == stat.S_IFREG:
            self.file(source, fd, name, st)
            return
        if kind == stat.S_IFLNK:
            os.symlink(os.readlink(source), name, dir_fd=fd)
        elif kind == stat.S_IFIFO:
            os.mkfifo(name, 0o600, dir_fd=fd)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK) and self.privileged:
            os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=fd)
        else:
            self.skipped.append(rel)  # sockets; devices when unprivileged
            return
        self.metadata(fd, name, st)

    def file(self, source: str, fd: int, name: str, st: os.stat_result) -> None:
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                          dir_fd=fd)
            try:
                _copy(src, out, st.st_size)
                if self.privileged:
                    os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, _mode(st, self.privileged))
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(src)

    def metadata(self, fd: int, name: str, st: os.stat_result) -> None:
        if self.privileged:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, _mode(st, self.privileged), dir_fd=fd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=fd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory metadata, deepest first, once their contents are written."""
        for rel, st in sorted(self.dirs, key=lambda item: item[0].count("/"), reverse=True):
            directory = self.fds[rel]
            if self.privileged:
                os.fchown(directory, st.st_uid, st.st_gid)
            os.fchmod(directory, _mode(st, self.privileged))
            os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy(src: int, dst: int, size: int) -> None:
    left = size
    while left > 0:
        try:
            sent = os.copy_file_range(src, dst, min(left, 1 << 30))
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            sent = 0
        if sent == 0:
            while chunk := os.read(src, _CHUNK):
                os.write(dst, chunk)
            return
        left -= sent


def _export_local(root: Path, dest: Path) -> None:
    writer = _LocalWriter(dest)
    try:
        base = os.fspath(root)
        for rel, st in _walk(base):
            writer.add(os.path.join(base, rel), rel, st)
        writer.finish()
    finally:
        writer.close()


# a tar archive


def _export_tar(root: Path, out: BinaryIO) -> None:
    """A pax tar of the tree, sorted, with hard links as link entries."""
    privileged = _privileged()
    base = os.fspath(root)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, st in _walk(base):
            info = tarfile.TarInfo(rel)
            info.mode = _mode(st, privileged)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.mtime = st.st_mtime
            kind = stat.S_IFMT(st.st_mode)
            if kind != stat.S_IFDIR and st.st_nlink > 1:
                first = links.setdefault((st.st_dev, st.st_ino), rel)
                if first != rel:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    tar.addfile(info)
                    continue
            if kind == stat.S_IFREG:
                info.size = st.st_size
                fd = os.open(os.path.join(base, rel), os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as data:
                    tar.addfile(info, data)
                continue
            if kind == stat.S_IFDIR:
                info.type = tarfile.DIRTYPE
            elif kind == stat.S_IFLNK:
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(os.path.join(base, rel))
            elif kind == stat.S_IFIFO:
                info.type = tarfile.FIFOTYPE
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            else:
                continue  # sockets
            tar.addfile(info)

"""Answering a rebuild whose inputs have not changed, without loading the builder.

A ``bud`` that finishes writes a record to ``<store>/cache/replay/``, keyed by
its command line, working directory, user and the package's source files. The
record lists the state of everything the build read: the stat (type, device,
inode, size, mtime, ctime) of the Containerfile and of the files it looked for
and did not find, ignore and build-arg files, every context path a COPY, ADD
or bind mount hashed and every directory a glob listed, base image layouts and
archives, the store's ``index.json`` (tags) and step cache as the build left
them; the environment variables it read; and the lines a fully cached rebuild
prints. When the same command starts again and every one of these is as
recorded, the normal path could only hit the cache at every step and arrive at
the same image: the record's lines are printed and the ``--iidfile`` written,
in a few milliseconds, without importing the rest of pybuild. Anything else
runs a normal build, which writes a new record.

Builds whose outcome depends on more than that write no record: pushes,
registry caches, ``--pull=always|newer``, ``--no-cache``, several platforms,
downloads (ADD URL or git), secrets, ``--squash``, a Containerfile on stdin.

This module imports nothing beyond the interpreter's built-ins, so that the
check costs little more than starting Python.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import zlib

FORMAT = 1
_SUBCOMMANDS = ("bud", "build")
# environment variables every build reads (the store root, formats, timestamps)
_ENV = ("PYBUILD_ROOT", "XDG_DATA_HOME", "HOME", "SOURCE_DATE_EPOCH", "BUILDAH_FORMAT",
        "BUILDAH_ISOLATION")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_MAX_RECORDS = 64

Stamp = tuple[int, int, int, int, int, int] | None


class _Recording:
    """What the running build has read so far."""

    def __init__(self, path: str, key: bytes) -> None:
        self.path = path  # of the record
        self.key = key
        self.paths: dict[str, Stamp] = {}
        self.env: dict[str, str | None] = {name: os.environ.get(name) for name in _ENV}
        self.images: dict[str, str] = {}  # store names the build resolved -> manifest digest
        self.lines: list[tuple[int, str]] = []  # (1 stdout | 2 stderr, text)
        self.cancelled = ""


_recording: _Recording | None = None


def default_root() -> str:
    """The store root when ``--root`` is not given."""
    env = os.environ.get("PYBUILD_ROOT")
    if env:
        return env
    # uid 0 in the user namespace of a rootless pybuild (builder.userns) is still the user
    if os.geteuid() == 0 and not os.environ.get("_PYBUILD_USERNS_CONFIGURED"):
        return "/var/lib/pybuild"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(data, "pybuild")


_fingerprint: bytes | None = None


def code_fingerprint() -> bytes:
    """Names, sizes and modification times of the package's source files, and the
    Python version: results of another version of the code are never reused
    (computed once per process)."""
    global _fingerprint
    if _fingerprint is None:
        _fingerprint = _scan_package()
    return _fingerprint


def _scan_package() -> bytes:
    parts = [sys.version.encode()]
    pending, seen = [_PACKAGE], set()
    while pending:
        directory = pending.pop()
        real = os.path.realpath(directory)
        if real in seen:
            continue
        seen.add(real)
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir() and entry.name != "__pycache__":  # the grammar is a link
                    pending.append(entry.path)
                elif entry.name.endswith((".py", ".lark")):
                    st = entry.stat()
                    parts.append(f"{entry.path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return b"\n".join(sorted(parts))


def stamp(path: str, st: os.stat_result | None = None) -> Stamp:
    """What identifies a file's state (None: it does not exist)."""
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return None
    return (st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _split_globals(argv: list[str]) -> tuple[str, list[str]] | None:
    """(store root, subcommand and its arguments), or None for anything but a build."""
    root = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--root", "--storage-driver") and i + 1 < len(argv):
            if arg == "--root":
                root = argv[i + 1]
            i += 2
        elif arg.startswith(("--root=", "--storage-driver=")):
            if arg.startswith("--root="):
                root = arg.partition("=")[2]
            i += 1
        elif arg == "--debug":
            i += 1
        else:
            break
    rest = argv[i:]
    if not rest or rest[0] not in _SUBCOMMANDS or "-h" in rest or "--help" in rest:
        return None
    return os.path.abspath(root or default_root()), rest


def _record_path(root: str, argv: list[str]) -> tuple[str, bytes]:
    key = marshal.dumps((FORMAT, argv, os.getcwd(), os.geteuid(), code_fingerprint()))
    name = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"
    return os.path.join(root, "cache", "replay", name), key


def attempt(argv: list[str]) -> int | None:
    """Replay the recorded build ``argv`` names when nothing it read has changed (exit
    status 0); otherwise start recording this build and return None."""
    global _recording
    split = _split_globals(argv)
    if split is None:
        return None
    root, _ = split
    path, key = _record_path(root, argv)
    try:
        with open(path, "rb") as f:
            record = marshal.loads(f.read())  # load(f) reads in small pieces: 5x slower
        if _matches(record, key):
            _print(record["lines"])
            for name, text in record["files"]:
                with open(name, "w") as out:
                    out.write(text)
            return 0
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        pass  # no record, or one this version cannot read: build
    _recording = _Recording(path, key)
    return None


def _matches(record: dict, key: bytes) -> bool:  # type: ignore[type-arg]
    if record.get("key") != key:
        return False
    if any(os.environ.get(name) != value for name, value in record["env"]):
        return False
    return all(stamp(name) == expected for name, expected in record["paths"])


def _print(lines: list[tuple[int, str]]) -> None:
    for stream, text in lines:
        out = sys.stdout if stream == 1 else sys.stderr
        out.write(text + "\n")
    sys.stdout.flush()
    sys.stderr.flush()


# recording, called by the build as it reads its inputs


def recording() -> bool:
    return _recording is not None and not _recording.cancelled


def cancel(why: str) -> None:
    """This build's outcome depends on more than a record can check: write none."""
    if _recording is not None:
        _recording.cancelled = why


def watch(path: str | os.PathLike[str], st: os.stat_result | None = None) -> None:
    """The build read, or looked for, ``path`` (``st``: its lstat, taken before reading)."""
    if _recording is not None:
        name = os.path.abspath(path)
        if name not in _recording.paths:
            _recording.paths[name] = stamp(name, st)


def watch_parents(root: str, rel: str) -> None:
    """The build used ``rel`` under ``root``, so depends on the directories between
    them staying directories."""
    if _recording is not None:
        parts = rel.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            path = os.path.abspath(os.path.join(root, *parts[:depth]))
            watch(path)
            found = _recording.paths.get(path)
            if found is None or not stat.S_ISDIR(found[0]):
                break  # never lstat through a symlink: what it leads to is watched by its user


def watch_env(name: str) -> None:
    """The build read environment variable ``name``."""
    if _recording is not None:
        _recording.env.setdefault(name, os.environ.get(name))


def used_image(name: str, manifest_digest: str) -> None:
    """A base image the build found in the store under ``name``."""
    if _recording is not None:
        _recording.images.setdefault(name, manifest_digest)


def line(stream: int, text: str) -> None:
    """A line a fully cached rebuild prints (1: stdout, 2: stderr)."""
    if _recording is not None:
        _recording.lines.append((stream, text))


def images_used() -> dict[str, str]:
    return dict(_recording.images) if _recording is not None else {}


def save(state_paths: list[str], files: list[tuple[str, str]]) -> None:
    """Write the record of this finished build. ``state_paths`` are store files whose
    state is taken now (the caller holds the store lock and has checked that the
    names the build resolved still name the same images); ``files`` are written
    again on replay."""
    global _recording
    rec, _recording = _recording, None
    if rec is None or rec.cancelled:
        return
    paths = dict(rec.paths)
    for name in state_paths:
        paths[name] = stamp(name)
    path = rec.path
    record = {
        "key": rec.key,
        "env": sorted(rec.env.items()),
        "paths": sorted(paths.items()),
        "lines": rec.lines,
        "files": [(os.path.abspath(name), text) for name, text in files],
    }
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps(record))
        os.replace(tmp, path)
        _trim(directory)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _trim(directory: str) -> None:
    """Keep the newest records only."""
    with os.scandir(directory) as entries:
        records = sorted((e.stat().st_mtime_ns, e.path) for e in entries if e.is_file())
    for _, name in records[:-_MAX_RECORDS]:
        try:
            os.unlink(name)
        except OSError:
            pass

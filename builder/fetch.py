"""Build inputs from elsewhere, made into local directories: git repositories,
tarball URLs, tar streams on stdin and local archives.

Follows Buildah (``define.TempDirForURL``) and BuildKit where they agree:

* A git URL is ``git://...``, ``ssh://...``, ``user@host:path`` (scp style), an
  ``http(s)://`` URL whose path ends in ``.git``, or ``file://...``; a fragment
  ``#REF:SUBDIR`` picks a branch, tag or commit and a directory inside. The
  repository is fetched shallowly (``git fetch --depth=1``) by the ``git`` binary,
  never prompting for credentials, with umask 022 so file modes do not depend on
  the caller's.
* Any other ``http(s)://`` URL is downloaded: a tar archive (plain, gzip, zstd,
  bzip2 or xz) is the context; anything else is taken as the Containerfile of an
  otherwise empty context, as Buildah and Docker do. ``-`` (stdin) is the same.
* Archives are unpacked by the hardened layer extractor (``unpack_archive``), so a
  context tar can write nothing outside its directory.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast
from urllib.parse import urlsplit

from builder.errors import ContextError, PybuildError
from builder.rootfs.extract import extract_layer
from builder.rootfs.paths import resolve_in_root

__all__ = ["GitSource", "Fetched", "archive_compression", "clone_git", "download",
           "fetch_context", "is_git_url", "is_remote", "parse_git_url", "unpack_archive"]

_SCP_STYLE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:(?!//)")
_GIT_SCHEMES = ("git://", "ssh://", "file://")
_TAR_MAGIC = (b"ustar\x00", b"ustar ")
# compression -> (leading bytes, media type suffix the extractor understands)
_MAGIC = (("gzip", b"\x1f\x8b"), ("zstd", b"\x28\xb5\x2f\xfd"), ("bzip2", b"BZh"),
          ("xz", b"\xfd7zXZ\x00"))
_CHUNK = 1 << 20
DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class GitSource:
    """A git URL split as BuildKit does: ``REMOTE[#REF[:SUBDIR]]``."""

    remote: str
    ref: str = ""  # branch, tag or commit; "" for the remote's HEAD
    subdir: str = ""


@dataclass(frozen=True)
class Fetched:
    """A context made local: its directory, and what it was made from."""
    directory: Path
    origin: str  # "git", "archive" or "containerfile" (a lone Containerfile)


def is_git_url(text: str) -> bool:
    """Whether ``text`` names a git repository (see the module docstring)."""
    if text.startswith(_GIT_SCHEMES) or _SCP_STYLE.match(text):
        return True
    if text.startswith(("http://", "https://")):
        return urlsplit(text.partition("#")[0]).path.endswith(".git")
    return False


def is_remote(text: str) -> bool:
    """Whether a context argument is fetched rather than a local path."""
    return text == "-" or is_git_url(text) or text.startswith(("http://", "https://"))


def parse_git_url(text: str) -> GitSource:
    remote, _, fragment = text.partition("#")
    ref, _, subdir = fragment.partition(":")
    if not remote:
        raise ContextError(f"parsing git URL {text!r}: no repository")
    return GitSource(remote, ref, subdir.strip("/"))


def _git(args: list[str], cwd: Path | None, what: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true",
           "LC_ALL": "C"}
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, umask=0o022, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ContextError(f"{what}: the git binary is not installed",
                           hint="install the Debian package git") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise ContextError(f"{what}: {detail}")
    return proc.stdout.strip()


def clone_git(source: GitSource, dest: Path) -> tuple[Path, str]:
    """Fetch ``source`` shallowly into ``dest`` (created); returns the directory the
    source names (its subdirectory, resolved inside the clone) and the commit."""
    what = f"cloning {source.remote}" + (f"#{source.ref}" if source.ref else "")
    dest.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q", str(dest)], None, what)
    _git(["remote", "add", "origin", source.remote], dest, what)
    want = source.ref or "HEAD"
    try:
        _git(["fetch", "-q", "--depth=1", "origin", "--", want], dest, what)
    except ContextError:
        if not re.fullmatch(r"[0-9a-f]{7,64}", want):
            raise
        _git(["fetch", "-q", "origin"], dest, what)  # a commit the server will not hand out alone
        _git(["checkout", "-q", "--detach", want], dest, what)
    else:
        _git(["checkout", "-q", "--detach", "FETCH_HEAD"], dest, what)
    commit = _git(["rev-parse", "HEAD"], dest, what)
    if not source.subdir:
        return dest, commit

    try:
        directory = resolve_in_root(dest, source.subdir)
    except OSError as exc:
        raise ContextError(f"{what}: {source.subdir!r}: {exc.strerror}") from exc
    if not directory.is_dir():
        raise ContextError(f"{what}: no directory {source.subdir!r} in the repository")
    return directory, commit


def download(url: str, dest: Path) -> None:
    """Stream ``url`` into the file ``dest``; HTTP errors name the status."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code >= 400:
                raise ContextError(f"downloading {url}: HTTP status {response.status_code}")
            with open(dest, "wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
    except requests.RequestException as exc:
        raise ContextError(f"downloading {url}: {exc}") from exc
    if dest.stat().st_size == 0:
        raise ContextError(f"downloading {url}: no contents")


def archive_compression(path: Path) -> str | None:
    """"gzip", "zstd", "bzip2", "xz" or "none" when ``path`` holds a (compressed) tar
    archive; None when it is something else."""
    with open(path, "rb") as f:
        head = f.read(8)
    compression = next((name for name, magic in _MAGIC if head.startswith(magic)), "none")
    try:
        with _decompressed(path, compression) as stream:
            block = stream.read(512)
    except (OSError, EOFError, ValueError, lzma.LZMAError):
        return None
    if len(block) == 512 and block[257:263] in _TAR_MAGIC:
        return compression
    return None


def _decompressed(path: Path, compression: str) -> IO[bytes]:
    if compression == "gzip":

        return cast(IO[bytes], gzip.open(path, "rb"))
    if compression == "zstd":
        import zstandard

        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(open(path, "rb"),
                                                                          closefd=True))
    if compression == "bzip2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def unpack_archive(path: Path, dest: Path, label: str) -> None:
    """Unpack the tar archive ``path`` into the directory ``dest`` through the hardened
    layer extractor (``builder.rootfs.extract``): nothing lands outside ``dest``.
    ``label`` names the archive in errors."""
    compression = archive_compression(path)
    if compression is None:
        raise ContextError(f"unpacking {label}: not a tar archive")
    dest.mkdir(parents=True, exist_ok=True)
    media = {"gzip": "tar+gzip", "zstd": "tar+zstd"}.get(compression, "tar")
    with (open(path, "rb") if compression in ("gzip", "zstd", "none")
          else _decompressed(path, compression)) as stream:
        try:
            extract_layer(cast(BinaryIO, stream), f"application/vnd.oci.image.layer.v1.{media}", dest,
                          layer_digest=label, whiteouts="apply")
        except PybuildError as exc:
            raise ContextError(f"unpacking {label}: {exc}") from exc


def fetch_context(argument: str, workdir: Path, stdin: BinaryIO | None = None) -> Fetched:
    """Make the context ``argument`` (``-``, a git URL, an http(s) URL or a local
    archive file) a directory under ``workdir``."""
    directory = workdir / "context"
    if is_git_url(argument):
        found, _ = clone_git(parse_git_url(argument), directory)
        return Fetched(found, "git")
    spool = workdir / "download"
    if argument == "-":
        if stdin is None:
            raise ContextError("reading build context from stdin: no stdin")
        with open(spool, "wb") as out:
            shutil.copyfileobj(stdin, out, _CHUNK)
        label = "build context from stdin"
    elif argument.startswith(("http://", "https://")):
        download(argument, spool)
        label = f"build context {argument}"
    else:
        spool = Path(argument)
        label = f"build context {argument}"
    if archive_compression(spool) is not None:
        unpack_archive(spool, directory, label)
        return Fetched(directory, "archive")
    if spool.parent != workdir:
        raise ContextError(f"checking build context {argument!r}: not a directory or a tar "
                           "archive")
    directory.mkdir(parents=True, exist_ok=True)
    os.replace(spool, directory / DOCKERFILE)  # a lone Containerfile, as Buildah takes it
    return Fetched(directory, "containerfile")

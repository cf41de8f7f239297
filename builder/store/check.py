"""Integrity of the image store, and its repair.

``check_store`` verifies every blob's digest, every reference from
``index.json`` down (manifests, nested indexes, configs and layers exist and
have the declared size), and finds unreferenced blobs, stray files and what
dead processes left behind. ``repair_store`` removes leftovers and corrupt
blobs, drops index entries that cannot be used and collects unused blobs, so
the store passes ``check_store`` afterwards. Names whose image is damaged are
lost; nothing else is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import ImageError, PybuildError
from builder.image.digest import is_digest
from builder.image.layout import write_atomic
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_LAYOUT_VERSION,
    Descriptor,
    Index,
    Manifest,
)
from builder.store import Store

__all__ = ["Problem", "Report", "check_store", "repair_store"]

_CHUNK = 1 << 20
_LEFTOVER_KINDS = {"temp": "leftover-temp", "partial-layer": "partial-layer",
                   "workspace": "leftover-workspace"}


@dataclass(frozen=True)
class Problem:
    """One finding. ``kind`` is one of: corrupt-blob, stray-file, bad-layout,
    bad-index, dangling-reference, unreferenced-blob, leftover-temp,
    partial-layer, leftover-workspace. ``subject`` is a store-relative path or
    an image's names; ``digest`` the blob or manifest concerned, if any."""

    kind: str
    subject: str
    detail: str
    digest: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    blobs: int = 0
    images: int = 0

    @property
    def clean(self) -> bool:
        return not self.problems

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]


@dataclass
class _Entry:
    """One manifest (or nested index) the index names, with what it needs."""

    digest: str
    names: list[str]
    needs: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return ", ".join(self.names) or f"<untagged {self.digest[7:19]}>"


def check_store(store: Store, *, verify: bool = True) -> Report:
    """Everything wrong with the store; ``verify=False`` skips hashing blobs."""
    report = Report()
    with store.lock():
        _check_layout_marker(store, report)
        index = _read_index(store, report)
        sizes = _blob_sizes(store, report)
        entries = _entries(index)
        referenced = store.retained_blobs()
        for entry in entries:
            _walk(store, _declared(index, entry.digest), entry, sizes, top=True)
            referenced |= entry.needs
        if index is not None and not _pinned_by_others(store):
            for digest in sorted(set(sizes) - referenced):
                report.problems.append(Problem("unreferenced-blob", _rel(store, digest),
                                               "no image uses it", digest))
        for item in store.leftovers():
            report.problems.append(Problem(_LEFTOVER_KINDS[item.kind],
                                           str(item.path.relative_to(store.root)), item.why))
    corrupt: set[str] = set()
    if verify:
        for digest in sorted(sizes):
            actual = _hash(store.layout.blob_path(digest))
            if actual is not None and actual != digest:
                corrupt.add(digest)
                report.problems.append(Problem("corrupt-blob", _rel(store, digest),
                                               f"content hashes to {actual}", digest))
    for entry in entries:
        reasons = entry.reasons + [f"blob {d} is corrupt" for d in sorted(entry.needs & corrupt)]
        if reasons:
            report.problems.append(Problem("dangling-reference", entry.subject,
                                           "; ".join(reasons), entry.digest))
    report.blobs = len(sizes)
    report.images = len(entries)
    return report


def repair_store(store: Store) -> list[str]:
    """Fix what ``check_store`` finds; returns one line per action taken."""
    done: list[str] = []
    with store.exclusive():
        for _ in range(3):  # a rebuilt index can reveal more to drop
            actions = _repair_once(store)
            if not actions:
                break
            done.extend(actions)
    return done


def _repair_once(store: Store) -> list[str]:
    done: list[str] = []
    for item in store.clean_leftovers():
        done.append(f"removed {item.path.relative_to(store.root)} ({item.why})")
    report = check_store(store)
    for problem in report.of_kind("corrupt-blob") + report.of_kind("stray-file"):
        path = store.root / problem.subject
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        done.append(f"removed {problem.kind.replace('-', ' ')} {problem.subject}")
    if report.of_kind("bad-layout"):
        body = json.dumps({"imageLayoutVersion": MEDIA_OCI_LAYOUT_VERSION}).encode()
        write_atomic(store.root / "oci-layout", body, tmp_dir=store.tmp_dir())
        done.append("rewrote oci-layout")
    if report.of_kind("bad-index"):
        index = _recovered_index(store)
        store.layout.write_index(index)
        done.append(f"rebuilt index.json from {len(index.manifests)} stored manifests "
                    "(their names are lost)")
    dangling = {p.digest for p in report.of_kind("dangling-reference")}
    if dangling:
        index = store.layout.read_index()
        index.manifests = [d for d in index.manifests if d.digest not in dangling]
        store.layout.write_index(index)
        done.extend(f"dropped reference {p.subject} ({p.detail})"
                    for p in report.of_kind("dangling-reference"))
    removed = store.gc()
    if removed:
        done.append(f"removed {removed} unreferenced blob{'s' * (removed != 1)}")
    return done


# -- the parts of check_store


def _rel(store: Store, digest: str) -> str:
    return f"blobs/sha256/{digest[7:]}"


def _check_layout_marker(store: Store, report: Report) -> None:
    try:
        marker = json.loads((store.root / "oci-layout").read_bytes())
        ok = isinstance(marker, dict) and isinstance(marker.get("imageLayoutVersion"), str)
    except (OSError, ValueError):
        ok = False
    if not ok:
        report.problems.append(Problem("bad-layout", "oci-layout",
                                       "missing or not an OCI layout marker"))


def _read_index(store: Store, report: Report) -> Index | None:
    try:
        return Index.from_json((store.root / "index.json").read_bytes())
    except FileNotFoundError:
        return Index()
    except (OSError, PybuildError) as exc:
        report.problems.append(Problem("bad-index", "index.json", str(exc)))
        return None


def _blob_sizes(store: Store, report: Report) -> dict[str, int]:
    """Size of every blob; files that cannot be blobs are reported as stray."""
    directory = store.root / "blobs" / "sha256"
    sizes: dict[str, int] = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return sizes
    for name in names:
        if name.startswith("."):
            continue  # temporary files: see Store.leftovers()
        path = directory / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not is_digest("sha256:" + name) or not path.is_file() or path.is_symlink():
            report.problems.append(Problem("stray-file", f"blobs/sha256/{name}",
                                           "not a blob (name or file type)"))
            continue
        sizes["sha256:" + name] = st.st_size
    return sizes


def _entries(index: Index | None) -> list[_Entry]:
    entries: dict[str, _Entry] = {}
    for desc in index.manifests if index else []:
        entry = entries.setdefault(desc.digest, _Entry(desc.digest, []))
        name = (desc.annotations or {}).get(ANNOTATION_REF_NAME)
        if name:
            entry.names.append(name)
    return list(entries.values())


def _declared(index: Index | None, digest: str) -> Descriptor:
    assert index is not None
    return next(d for d in index.manifests if d.digest == digest)


def _walk(store: Store, desc: Descriptor, entry: _Entry, sizes: dict[str, int], *,
          top: bool) -> None:
    """Record in ``entry`` every blob ``desc`` needs and every reason it is unusable."""
    what = "manifest" if top else "nested manifest"
    if not is_digest(desc.digest):
        entry.reasons.append(f"{what} digest {desc.digest!r} is not a sha256 digest")
        return
    entry.needs.add(desc.digest)
    if not _sized(desc, sizes, what, entry):
        return
    try:
        data = store.layout.read_blob(desc.digest)
        if desc.media_type in INDEX_TYPES:
            for child in Index.from_json(data).manifests:
                _walk(store, child, entry, sizes, top=False)
            return
        if desc.media_type not in MANIFEST_TYPES:
            entry.reasons.append(f"{what} {desc.digest} has unknown media type "
                                 f"{desc.media_type!r}")
            return
        manifest = Manifest.from_json(data)
    except ImageError as exc:
        entry.reasons.append(f"{what} {desc.digest} is unreadable: {exc}")
        return
    for kind, blob in [("config", manifest.config),
                       *(("layer", layer) for layer in manifest.layers)]:
        if not is_digest(blob.digest):
            entry.reasons.append(f"{kind} digest {blob.digest!r} is not a sha256 digest")
            continue
        entry.needs.add(blob.digest)
        _sized(blob, sizes, kind, entry)


def _sized(desc: Descriptor, sizes: dict[str, int], what: str, entry: _Entry) -> bool:
    size = sizes.get(desc.digest)
    if size is None:
        entry.reasons.append(f"{what} {desc.digest} is missing")
        return False
    if size != desc.size:
        entry.reasons.append(f"{what} {desc.digest} has {size} bytes, {desc.size} declared")
        return False
    return True


def _pinned_by_others(store: Store) -> bool:
    """Whether some process is writing blobs no image references yet."""
    fd = os.open(store.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return not store.holds_exclusive  # our own exclusive hold is no pin
    finally:
        os.close(fd)


def _hash(path: Path) -> str | None:
    """The blob's actual digest; None when it vanished meanwhile (collected)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return "sha256:" + h.hexdigest()


def _recovered_index(store: Store) -> Index:
    """An index of every stored manifest (unnamed), for an unreadable index.json."""
    manifests: list[Descriptor] = []
    for digest in store.layout.blob_digests():
        path = store.layout.blob_path(digest)
        if path.stat().st_size > _CHUNK:
            continue
        try:
            data = path.read_bytes()
            manifest = Manifest.from_json(data)
        except (OSError, PybuildError):
            continue
        if manifest.media_type in MANIFEST_TYPES and is_digest(manifest.config.digest):
            manifests.append(Descriptor(manifest.media_type, digest, len(data)))
    return Index(manifests)

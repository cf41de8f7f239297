"""Hypothesis strategies for fuzzing image parsing: JSON documents (random, and
valid ones mutated), raw bytes, and layer tar streams (random headers and
mutated valid tars). Shared by the tests and ``bench/fuzz_image.py``."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from builder.errors import PybuildError
from builder.image.spec import Descriptor, ImageConfig, Index, Manifest

DIGEST = "sha256:" + "ab" * 32
KEYS = ["mediaType", "digest", "size", "config", "layers", "manifests", "annotations",
        "platform", "urls", "artifactType", "schemaVersion", "architecture", "os",
        "variant", "os.version", "os.features", "created", "author", "rootfs", "type",
        "diff_ids", "history", "created_by", "empty_layer", "comment", "Env", "Cmd",
        "Entrypoint", "User", "Labels", "ExposedPorts", "Volumes", "WorkingDir",
        "StopSignal", "ArgsEscaped", "Shell", "Healthcheck", "OnBuild"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True), st.text(max_size=20), st.just(DIGEST), st.just(""),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                        max_size=6),
    ),
    max_leaves=25,
)

_DESCRIPTOR = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
               "size": 42, "annotations": {"a": "b"},
               "platform": {"architecture": "amd64", "os": "linux", "os.features": ["x"]},
               "urls": ["http://example.invalid/x"]}
VALID: dict[str, dict[str, Any]] = {
    "manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "config": {**_DESCRIPTOR, "mediaType":
                            "application/vnd.oci.image.config.v1+json"},
                 "layers": [_DESCRIPTOR, _DESCRIPTOR], "annotations": {"k": "v"}},
    "index": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
              "manifests": [_DESCRIPTOR], "annotations": {"k": "v"}},
    "config": {"created": "2024-01-01T00:00:00Z", "author": "me", "architecture": "amd64",
               "os": "linux", "variant": "v8", "os.version": "1", "os.features": ["f"],
               "config": {"User": "1", "Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": ["x"],
                          "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}},
                          "Volumes": {"/v": {}}, "WorkingDir": "/", "StopSignal": "TERM",
                          "ArgsEscaped": True, "Shell": ["sh", "-c"],
                          "Healthcheck": {"Test": ["NONE"]}, "OnBuild": ["RUN x"]},
               "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
               "history": [{"created": "x", "created_by": "y", "empty_layer": True}]},
    "descriptor": _DESCRIPTOR,
}


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> Any:
    """A valid document of ``kind`` with a few subtrees replaced, deleted or added."""
    doc = json.loads(json.dumps(VALID[kind]))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while True:  # walk down to a random container
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            containers = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
            if not containers or draw(st.booleans()):
                break
            node = draw(st.sampled_from(containers))[1]
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(KEYS))] = draw(json_values)
        elif action == "add":
            node.append(draw(json_values))
        elif keys and action == "delete":
            del node[draw(st.sampled_from(keys))]
        elif keys:
            node[draw(st.sampled_from(keys))] = draw(json_values)
    return doc


def documents(kind: str) -> st.SearchStrategy[Any]:
    """Inputs for the parser of ``kind``: dicts, JSON text and bytes, junk bytes."""
    docs = st.one_of(mutated(kind), json_values)
    as_text = docs.map(lambda d: json.dumps(d, allow_nan=True))
    flipped = st.tuples(as_text.map(str.encode), st.integers(0, 10 ** 6), st.integers(0, 255)) \
        .map(lambda t: _flip(*t))
    deep = st.integers(1, 5000).map(lambda n: "[" * n + "]" * n)
    return st.one_of(docs, as_text, as_text.map(str.encode), flipped, st.binary(max_size=64),
                     deep)


def _flip(data: bytes, position: int, value: int) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    buf[position % len(buf)] = value
    return bytes(buf)


def _descriptor(x: Any) -> Any:
    return Descriptor.from_json(x)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "manifest": Manifest.from_json, "index": Index.from_json, "config": ImageConfig.from_json,
    "descriptor": _descriptor,
}


def check_parser(kind: str, data: Any) -> None:
    """Only PybuildError may escape; whatever parses serialises, and that
    serialisation parses back to the same serialisation."""
    parse = PARSERS[kind]
    try:
        value = parse(data)
    except PybuildError:
        return
    if kind == "descriptor":
        first = json.dumps(value.to_json(), sort_keys=True)
        assert json.dumps(Descriptor.from_json(json.loads(first)).to_json(),
                          sort_keys=True) == first
    elif kind == "config":
        first = value.to_json("docker")
        assert ImageConfig.from_json(first).to_json("docker") == first
    else:
        first = value.to_json()
        assert parse(first).to_json() == first


# -- layer tar streams

_TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
          tarfile.BLKTYPE, tarfile.FIFOTYPE, b"7", b"x", b"Z"]
_NAMES = st.one_of(
    st.sampled_from(["a", "a/b", "./a", "a/../b", "/abs", "..", ".", "dir/", ".wh.a",
                     "a/.wh.b", ".wh..wh..opq", "a/.wh..wh..opq", ".wh..", "x" * 300, "a//b"]),
    st.text(min_size=1, max_size=12),
)


# PAX numbers beyond what the system can store (time_t, uid_t); extract_layer
# does not turn the errors they cause into LayerError (see test_fuzz.py)
OUT_OF_RANGE = ["1e30", "-1e30", "inf", "nan", "99999999999999999999"]


@st.composite
def tar_members(draw: st.DrawFn, extreme: bool = False) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(draw(_NAMES))
    info.type = draw(st.sampled_from(_TYPES))
    info.mode = draw(st.integers(0, 0o7777))
    info.uid = draw(st.integers(0, 2 ** 21 - 1))
    info.gid = draw(st.integers(0, 2 ** 21 - 1))
    info.mtime = draw(st.one_of(st.integers(0, 2 ** 33 - 1), st.floats(0, 2 ** 33)))
    info.linkname = draw(st.one_of(_NAMES, st.just("../outside"), st.just("../outside/x")))
    info.devmajor = draw(st.integers(0, 2 ** 21 - 1))
    info.devminor = draw(st.integers(0, 2 ** 21 - 1))
    data = draw(st.binary(max_size=64)) if info.type == tarfile.REGTYPE else b""
    info.size = len(data)
    if draw(st.booleans()):
        info.pax_headers = draw(st.dictionaries(
            st.sampled_from(["SCHILY.xattr.user.a", "SCHILY.xattr.trusted.overlay.opaque",
                             "SCHILY.xattr.security.capability", "mtime", "uid", "path",
                             "linkpath", "size"]),
            st.one_of(st.text(max_size=10), st.sampled_from(["0", "1.5", "-1", "4294967295"]),
                      st.sampled_from(OUT_OF_RANGE if extreme else ["7"])),
            max_size=2))
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            try:
                tar.addfile(info, io.BytesIO(data))
            except (ValueError, OverflowError, UnicodeError):
                continue  # tarfile cannot write this header; others can
    return out.getvalue()


@st.composite
def layer_streams(draw: st.DrawFn, extreme: bool = False) -> tuple[bytes, str]:
    """(blob, media type): tars of random entries, possibly corrupted or compressed;
    ``extreme`` adds PAX numbers out of the system's range."""
    members = draw(st.lists(tar_members(extreme), max_size=8))
    data = _tar(members, draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT,
                                                tarfile.USTAR_FORMAT])))
    for _ in range(draw(st.integers(0, 3))):
        data = _flip(data, draw(st.integers(0, 10 ** 5)), draw(st.integers(0, 255)))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    media_type = draw(st.sampled_from(["application/vnd.oci.image.layer.v1.tar",
                                       "application/vnd.oci.image.layer.v1.tar+gzip"]))
    if media_type.endswith("+gzip"):
        data = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = _flip(data, draw(st.integers(0, 10 ** 5)), draw(st.integers(0, 255)))
    return data, media_type


def check_extract(blob: bytes, media_type: str, whiteouts: str) -> None:
    """extract_layer into a fresh directory raises nothing but PybuildError and
    writes nothing outside it."""
    from builder.rootfs.extract import extract_layer

    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp) / "outside"
        dest = Path(tmp) / "dest"
        (outside / "x").mkdir(parents=True)
        dest.mkdir()
        before = [(p.name, p.lstat()) for p in (outside, outside / "x")]
        try:
            extract_layer(io.BytesIO(blob), media_type, dest, layer_digest=DIGEST,
                          whiteouts=whiteouts)
        except PybuildError:
            pass
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["dest", "outside"]
        assert [p.name for p in outside.iterdir()] == ["x"] and not any((outside / "x").iterdir())
        after = [(p.name, p.lstat()) for p in (outside, outside / "x")]
        for (name, old), (_, new) in zip(before, after):
            assert (old.st_mode, old.st_uid, old.st_mtime_ns) == \
                (new.st_mode, new.st_uid, new.st_mtime_ns), f"{name} outside dest was changed"


def check_unpack(blob: bytes, media_type: str, dest: str) -> None:
    """extract_archive (ADD) of a random stream onto a root that already has content (a
    merged-/usr symlink, a symlink to the host directory next to it) raises nothing but
    PybuildError and never changes that host directory (names, mode, owner, mtime)."""
    import os

    from builder.rootfs.extract import extract_archive

    compression = "gzip" if media_type.endswith("+gzip") else "none"
    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp) / "outside"
        root = Path(tmp) / "root"
        (outside / "x").mkdir(parents=True)
        (root / "usr" / "bin").mkdir(parents=True)
        os.symlink("usr/bin", root / "bin")
        os.symlink(str(outside), root / "host")
        os.symlink("../outside", root / "a")
        before = [(p.name, p.lstat()) for p in (outside, outside / "x")]
        try:
            extract_archive(io.BytesIO(blob), root, dest, name="fuzz.tar",
                            compression=compression)
        except PybuildError:
            pass
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["outside", "root"]
        assert [p.name for p in outside.iterdir()] == ["x"] and not any((outside / "x").iterdir())
        after = [(p.name, p.lstat()) for p in (outside, outside / "x")]
        for (name, old), (_, new) in zip(before, after):
            assert (old.st_mode, old.st_uid, old.st_mtime_ns) == \
                (new.st_mode, new.st_uid, new.st_mtime_ns), f"{name} outside the root was changed"

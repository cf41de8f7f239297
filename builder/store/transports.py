"""Image references with transport prefixes, and copies between the store and every
transport: ``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``, ``docker-archive:FILE[:REF]``
and registries (``docker://``, ``pull_image``/``push_image``, through the protocol
client in ``builder.registry``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from builder import replay
from builder.errors import (
    AuthenticationError,
    ImageError,
    LayerError,
    PybuildError,
    RegistryError,
    RegistryNotFound,
    RegistryTransportError,
    UsageError,
    VerificationError,
)
from builder.image.compress import detect_compression, open_decompressed
from builder.image.digest import digest_hex, sha256_digest
from builder.image.layout import Layout
from builder.image.manifest import build_manifest
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
)
from builder.platform import Platform, choose, host_platform
from builder.reference import parse_reference
from builder.registry.blobinfo import BlobInfo
from builder.registry.client import (
    RegistryClient,
    RegistryOptions,
    convert_manifest,
    fetch_image,
    in_context,
    resolve_candidates,
    send_image,
)
from builder.registry.config import load_registries_conf
from builder.registry.http import Transport
from builder.registry.progress import make_progress
from builder.rootfs.extract import extract_archive
from builder.rootfs.verify import ImageImport, check_blob, verified_diff_id
from builder.store import ImageRecord, Store, normalize_name
from builder.store import Store as StoreClass

TRANSPORTS = ("oci", "oci-archive", "docker-archive")
_PREFIXES = (("docker://", "docker"), ("oci:", "oci"), ("oci-archive:", "oci-archive"),
             ("docker-archive:", "docker-archive"), ("containers-storage:", "store"))
_LAYER_BY_COMPRESSION = {"gzip": MEDIA_OCI_LAYER_GZIP, "zstd": MEDIA_OCI_LAYER_ZSTD,
                         "none": MEDIA_OCI_LAYER}
_JSON_LIMIT = 16 << 20  # bytes: manifests, indexes and configs larger than this are refused


def parse_transport(ref: str) -> tuple[str, str]:
    """(transport, rest): ("oci", "DIR[:REF]"), ("docker", "REF") for docker://REF,
    ("store", ref) for a plain name."""
    for prefix, transport in _PREFIXES:
        if ref.startswith(prefix):
            rest = ref[len(prefix):]
            if not rest:
                raise UsageError(f"parsing image reference {ref!r}: nothing after {prefix!r}")
            return transport, rest
    return "store", ref


def split_path_ref(rest: str) -> tuple[Path, str | None]:
    """"DIR:REF" -> (DIR, REF); the path ends at the first colon, as skopeo reads it."""
    path, colon, ref = rest.partition(":")
    return Path(path), (ref if colon and ref else None)


# -- export


def export_image(store: Store, image: str, dest: str, *, format: str | None = None,
                 warn: Callable[[str], None] = lambda text: None) -> str:
    """Copy a stored image to oci:, oci-archive: or docker-archive:; returns the
    digest of the manifest written (the source manifest for docker-archive).

    An OCI layout gets an OCI image unless ``format`` is "docker", as with Buildah:
    a Docker v2s2 image is converted (manifest, config and layer media types), and the
    config fields the OCI format has no place for (Healthcheck, OnBuild, Shell) are
    dropped, each named through ``warn``."""
    record = store.lookup(image)
    transport, rest = parse_transport(dest)
    path, ref = split_path_ref(rest)
    manifest_bytes = store.layout.read_blob(record.manifest_digest)
    manifest = record.manifest
    config: bytes | None = None  # a converted config, written beside the layers
    if transport != "docker-archive":
        wanted = format or "oci"
        if wanted == "oci" and manifest.media_type != MEDIA_OCI_MANIFEST:
            for name in record.config.config.docker_only_fields():
                warn(f"{name} is not supported by the OCI image format and is dropped from "
                     f"{dest}; push with --format docker to keep it")
            config = record.config.to_json("oci")
            config_digest = sha256_digest(config)
            manifest = build_manifest(
                Descriptor(MEDIA_OCI_CONFIG, config_digest, len(config)), manifest.layers,
                format="oci", annotations=manifest.annotations)
            manifest_bytes = manifest.to_json()
        elif wanted != "oci" and manifest.media_type == MEDIA_OCI_MANIFEST:
            manifest = build_manifest(manifest.config, manifest.layers, format=wanted,
                                      annotations=manifest.annotations)
            manifest_bytes = manifest.to_json()
    if transport == "oci":
        return _write_oci(store, manifest, manifest_bytes, Layout(path), ref, record, config)
    if transport == "oci-archive":
        with tempfile.TemporaryDirectory(dir=store.tmp_dir()) as tmp:
            digest = _write_oci(store, manifest, manifest_bytes, Layout(Path(tmp)), ref,
                                record, config)
            _tar_directory(Path(tmp), path)
        return digest
    if transport == "docker-archive":
        _write_docker_archive(store, record, path, ref)
        return record.manifest_digest
    raise UsageError(f"exporting image to {dest!r}: unsupported transport {transport!r}",
                     hint=f"use one of {', '.join(t + ':' for t in TRANSPORTS)}")


def _write_oci(store: Store, manifest: Manifest, manifest_bytes: bytes, layout: Layout,
               ref: str | None, record: ImageRecord, config: bytes | None = None) -> str:
    if config is not None:
        layout.put_blob(config, expected=manifest.config.digest)
    store.layout.copy_to(layout, [*([] if config is not None else [manifest.config.digest]),
                                  *(x.digest for x in manifest.layers)])
    digest, size = layout.put_blob(manifest_bytes)
    image = record.config
    platform = Platform(image.os or "linux", image.architecture, image.variant or "")
    desc = Descriptor(manifest.media_type, digest, size, platform=platform,
                      annotations={ANNOTATION_REF_NAME: ref} if ref else None)
    index = layout.read_index()
    index.manifests = [d for d in index.manifests
                       if (d.annotations or {}).get(ANNOTATION_REF_NAME) != ref
                       or (ref is None and d.digest != digest)]
    index.manifests.append(desc)
    layout.write_index(index)
    return digest


def _tar_directory(source: Path, dest: Path) -> None:
    """A deterministic uncompressed tar of a directory's contents, written atomically."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w",
                                                    format=tarfile.PAX_FORMAT) as tar:
            for root, dirs, files in os.walk(source):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    full = Path(root) / name
                    info = tar.gettarinfo(full, arcname=str(full.relative_to(source)))
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mtime = 0
                    if info.isfile():
                        with open(full, "rb") as data:
                            tar.addfile(info, data)
                    else:
                        tar.addfile(info)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_docker_archive(store: Store, record: ImageRecord, path: Path, ref: str | None) -> None:
    """``docker save`` layout: manifest.json, the config, uncompressed layer tars."""
    layout = store.layout
    if ref:

        tags = [normalize_name(ref)]
    else:
        tags = list(record.names[:1])
    config_name = digest_hex(record.id) + ".json"
    layer_names = [digest_hex(diff_id) + ".tar" for diff_id in record.config.diff_ids]
    entry = {"Config": config_name, "RepoTags": tags, "Layers": layer_names}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w",
                                                    format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, config_name, layout.read_blob(record.id))
            written: set[str] = set()
            for name, desc in zip(layer_names, record.manifest.layers):
                if name in written:
                    continue
                written.add(name)
                with _uncompressed_file(store, desc) as (data, size):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = size, 0o644
                    tar.addfile(info, data)
            _add_bytes(tar, "manifest.json", json.dumps([entry]).encode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _uncompressed_file(store: Store, desc: Descriptor) -> Iterator[tuple[IO[bytes], int]]:
    with store.layout.open_blob(desc.digest) as blob:
        compression = detect_compression(blob.read(4))
        blob.seek(0)
        if compression == "none":
            yield blob, desc.size
            return
        with tempfile.TemporaryFile(dir=store.tmp_dir()) as out:
            reader: Any = open_decompressed(blob, compression)
            shutil.copyfileobj(reader, out, 1 << 20)
            size = out.tell()
            out.seek(0)
            yield out, size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:

    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


# -- import


def import_image(store: Store, src: str, names: Sequence[str] = (),
                 platform: Platform | None = None) -> ImageRecord:
    """Copy an image from oci:, oci-archive: or docker-archive: into the store through
    ``builder.rootfs.verify``: every blob is checked against its descriptor and every
    layer against the config (decompressed once, its tar walked) before anything is
    stored; the manifest and config bytes are kept. From an image index the entry for
    ``platform`` (anything with ``os`` and ``architecture``; default the host's) is
    taken."""
    transport, rest = parse_transport(src)
    path, ref = split_path_ref(rest)
    replay.watch(path / "index.json" if transport == "oci" else path)
    want = platform or host_platform()
    if transport == "oci":
        return _import_oci(store, Layout(path, create=False), ref, names, want, src)
    if transport == "oci-archive":
        with tempfile.TemporaryDirectory(dir=store.tmp_dir()) as tmp:
            _extract(path, Path(tmp))
            return _import_oci(store, Layout(Path(tmp), create=False), ref, names, want,
                               src)
    if transport == "docker-archive":
        return _import_docker_archive(store, path, ref, names, src)
    raise UsageError(f"importing image from {src!r}: unsupported transport {transport!r}",
                     hint=f"use one of {', '.join(t + ':' for t in TRANSPORTS)}")


def read_image_index(store: Store, src: str) -> bytes | None:
    """The image index ``oci:DIR[:REF]`` or ``oci-archive:FILE[:REF]`` names, or None
    when the name is a single image's manifest (``--all-platforms`` reads it)."""
    transport, rest = parse_transport(src)
    path, ref = split_path_ref(rest)
    if transport not in ("oci", "oci-archive"):
        return None

    def read(layout: Layout) -> bytes | None:
        desc = _select(layout.read_index(), ref, str(layout.root))
        if desc.media_type not in INDEX_TYPES:
            return None
        return check_blob(src, "index", desc, _small_blob(layout, desc))

    if transport == "oci":
        return read(Layout(path, create=False))
    with tempfile.TemporaryDirectory(dir=store.tmp_dir()) as tmp:
        _extract(path, Path(tmp))
        return read(Layout(Path(tmp), create=False))


def _extract(archive: Path, dest: Path) -> None:
    """Unpack an oci-archive with the hardened extractor."""
    try:
        with open(archive, "rb") as f:
            extract_archive(f, dest, name=str(archive))
    except OSError as exc:
        raise ImageError(f"reading archive {archive}: {exc.strerror or exc}") from exc
    except LayerError as exc:
        raise ImageError(f"reading archive {archive}: {exc}") from exc


def _select(index: Index, ref: str | None, source: str) -> Descriptor:
    if ref is not None:
        found = [d for d in index.manifests
                 if (d.annotations or {}).get(ANNOTATION_REF_NAME) == ref]
        if not found:
            raise ImageError(f"reading {source}: no image named {ref!r}")
        return found[0]
    if len(index.manifests) != 1:
        raise ImageError(f"reading {source}: {len(index.manifests)} images, name one with :REF")
    return index.manifests[0]


def _small_blob(layout: Layout, desc: Descriptor) -> bytes:
    """A JSON blob of the layout, read no further than its descriptor's size allows."""
    if desc.size > _JSON_LIMIT:
        raise ImageError(f"reading {desc.digest} in {layout.root}: {desc.size} bytes is more "
                         f"than the {_JSON_LIMIT} allowed")
    with layout.open_blob(desc.digest) as f:
        return f.read(desc.size + 1)


def _verified_before(store: Store, record: ImageRecord) -> bool:
    """Whether every layer of a stored image is recorded as verified."""
    return len(record.manifest.layers) == len(record.config.diff_ids) and all(
        verified_diff_id(store.root, layer.digest) == diff_id
        for layer, diff_id in zip(record.manifest.layers, record.config.diff_ids))


def _import_oci(store: Store, layout: Layout, ref: str | None, names: Sequence[str],
                platform: Platform, image: str) -> ImageRecord:
    with ImageImport(store, image) as imp:
        desc = _select(layout.read_index(), ref, str(layout.root))
        while desc.media_type in INDEX_TYPES:
            nested = Index.from_json(imp.check("index", desc, _small_blob(layout, desc)))
            if not nested.manifests:
                raise ImageError(f"reading {layout.root}: empty image index")
            if any(d.platform for d in nested.manifests):
                desc = choose(((d.platform, d) for d in nested.manifests), platform,
                              str(layout.root))
            else:
                desc = nested.manifests[0]
        manifest_bytes = imp.check("manifest", desc, _small_blob(layout, desc))
        if not names:  # already imported (a rebuild): no blob is read or written again
            stored = store.stored(desc.digest)
            if stored is not None and _verified_before(store, stored):
                return stored
        manifest = Manifest.from_json(manifest_bytes)
        config = imp.config(manifest.config, _small_blob(layout, manifest.config))
        _check_layer_count(image, manifest, config)
        for layer, diff_id in zip(manifest.layers, config.diff_ids):
            imp.layer(layer, diff_id, functools.partial(layout.open_blob, layer.digest))
        record: ImageRecord = imp.commit(manifest_bytes, names)
        return record


def _check_layer_count(image: str, manifest: Manifest, config: ImageConfig) -> None:
    if len(manifest.layers) != len(config.diff_ids):
        raise VerificationError(
            f'verifying image "{image}": the manifest lists {len(manifest.layers)} layers, '
            f"the config {len(config.diff_ids)} diff_ids", image=image,
            digest=manifest.config.digest, problem="diff_id")


def _import_docker_archive(store: Store, path: Path, ref: str | None,
                           names: Sequence[str], image: str) -> ImageRecord:
    try:
        tar = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise ImageError(f"reading docker archive {path}: {exc}") from exc
    with tar, ImageImport(store, image) as imp:
        entries: list[dict[str, Any]] = json.loads(_member(tar, "manifest.json", path))
        entry = _docker_entry(entries, ref, path)
        config_name = str(entry["Config"])
        config_bytes = _member(tar, config_name, path)
        config_desc = Descriptor(MEDIA_OCI_CONFIG, sha256_digest(config_bytes), len(config_bytes))
        named = Path(config_name).name.removesuffix(".json")
        if len(named) == 64 and "sha256:" + named != config_desc.digest:
            raise VerificationError(
                f'verifying image "{image}": config {config_name}: content digest is '
                f"{config_desc.digest}", image=image, digest="sha256:" + named, problem="digest")
        config = imp.config(config_desc, config_bytes)
        if len(config.diff_ids) != len(entry["Layers"]):
            raise ImageError(f"reading docker archive {path}: layer count does not match config")
        layers: list[Descriptor] = []
        for name, diff_id in zip(entry["Layers"], config.diff_ids):
            f = tar.extractfile(name)
            if f is None:
                raise ImageError(f"reading docker archive {path}: missing layer {name!r}")
            compression = detect_compression(f.read(4))
            f.seek(0)
            layers.append(imp.new_layer(f, _LAYER_BY_COMPRESSION[compression], diff_id,
                                        name=str(name)))
        manifest = Manifest(config_desc, layers)
        record: ImageRecord = imp.commit(manifest.to_json(), names)
        return record


def _docker_entry(entries: list[dict[str, Any]], ref: str | None, path: Path) -> dict[str, Any]:
    if not entries:
        raise ImageError(f"reading docker archive {path}: no images")
    if ref is None:
        return entries[0]
    if ref.startswith("@") and ref[1:].isdigit() and int(ref[1:]) < len(entries):
        return entries[int(ref[1:])]

    want = normalize_name(ref)
    for e in entries:
        if any(normalize_name(t) == want for t in e.get("RepoTags") or []):
            return e
    raise ImageError(f"reading docker archive {path}: no image tagged {ref!r}")


def _member(tar: tarfile.TarFile, name: str, path: Path) -> bytes:
    try:
        info = tar.getmember(name)
        f = tar.extractfile(info)
    except KeyError:
        f = None
    if f is None:
        raise ImageError(f"reading docker archive {path}: missing {name!r}")
    if info.size > _JSON_LIMIT:
        raise ImageError(f"reading docker archive {path}: {name!r} is too large")
    return f.read()


def read_image(store: Store, ref: str) -> ImageRecord:
    """The image a reference names, from the store or (copied through a temporary
    store) from a local transport; its blobs are not kept for transports."""
    transport, rest = parse_transport(ref)
    if transport == "store":
        return store.lookup(rest)
    if transport not in TRANSPORTS:
        raise UsageError(f"reading image {ref!r}: transport {transport!r} is not supported here")

    with tempfile.TemporaryDirectory(dir=store.tmp_dir()) as tmp:
        return import_image(StoreClass(Path(tmp)), ref)


# -- registries (docker://)


def pull_image(store: Store, ref: str, options: RegistryOptions | None = None, *,
               quiet: bool = False) -> ImageRecord:
    """Pull ``ref`` into ``store``; the stored image (named ``host/repo:tag``).

    Candidates (mirrors, then the registry; for short names each search
    registry) are tried in order; the first that has the image wins.
    """
    options = options or RegistryOptions()
    candidates = resolve_candidates(ref, options)
    transport = Transport()
    progress = make_progress("Copying", quiet=quiet)
    blob_info = BlobInfo(Path(store.root) / "registry-blobs.json")
    errors: list[PybuildError] = []
    try:
        for name, source, insecure in candidates:
            client = RegistryClient(
                source.registry, options, repository=source.repository,
                insecure=insecure, transport=transport,
            )
            with ImageImport(store, str(source)) as imp:
                try:
                    result = fetch_image(client, source, imp, progress=progress,
                                         blob_info=blob_info)
                except (RegistryNotFound, RegistryTransportError, AuthenticationError) as exc:
                    if len(candidates) == 1:
                        raise in_context(f"pulling {source}", exc) from exc
                    errors.append(in_context(f"pulling {source}", exc))
                    continue
                except VerificationError:
                    raise  # it names the image already
                except PybuildError as exc:
                    raise in_context(f"pulling {source}", exc) from exc
                stored = f"{name.name}@{name.digest}" if name.digest else str(name)
                record: ImageRecord = imp.commit(result.manifest, [stored])
            blob_info.save()
            return record
    finally:
        progress.close()
        transport.close()
    raise RegistryError(
        f"pulling {ref}: no candidate worked: " + "; ".join(e.message for e in errors),
        registry=errors[-1].registry if isinstance(errors[-1], RegistryError) else None,
    )


def push_image(store: Store, image: str, dest: str, options: RegistryOptions | None = None,
               *, digestfile: Path | None = None,
               report: Callable[[str], None] | None = None) -> str:
    """Push local ``image`` to ``dest`` (``[docker://]host/repo[:tag]``); the manifest digest."""
    options = options or RegistryOptions()
    record = store.lookup(image)
    ref = parse_reference(dest)
    conf = load_registries_conf(options.registries_conf)
    conf.check_blocked(ref)
    manifest = store.layout.read_blob(record.manifest_digest)
    manifest = convert_manifest(manifest, options.format)
    client = RegistryClient(
        ref.registry, options, repository=ref.repository, insecure=conf.is_insecure(ref.registry)
    )
    blob_info = BlobInfo(Path(store.root) / "registry-blobs.json")
    progress = make_progress("Copying", quiet=report is None)
    try:
        digest = send_image(
            client, ref, store.layout, manifest, blob_info=blob_info,
            report=report or (lambda line: None), progress=progress,
        )
    except PybuildError as exc:
        raise in_context(f"pushing to {ref}", exc) from exc
    finally:
        progress.close()
        client.close()
        blob_info.save()
    if digestfile is not None:
        digestfile.write_text(digest, encoding="utf-8")
    return digest

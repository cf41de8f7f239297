"""OCI image-spec v1.1 and Docker v2s2 types, media types and annotation keys.

Attributes are snake_case; the spec's JSON keys appear only in (de)serialisation.
Serialisation is compact JSON with keys in a fixed order and empty optional
fields omitted, so the same value always gives the same bytes (and digest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from builder.errors import ImageError
from builder.platform import Platform

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_OCI_LAYOUT_VERSION = "1.0.0"

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST})
LAYER_TYPES = frozenset({
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD,
    MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_LAYER,
})

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"

FORMATS = ("oci", "docker")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(data: bytes | str | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if not isinstance(data, (bytes, bytearray, str)):
        raise ImageError(f"reading {what}: expected a JSON object")
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"reading {what}: invalid JSON: {exc}") from exc
    except RecursionError:
        raise ImageError(f"reading {what}: invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ImageError(f"reading {what}: expected a JSON object")
    return obj


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImageError(f"reading {what}: expected a JSON object")
    return value


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_map_of(v: Any, kind: type) -> bool:
    return isinstance(v, dict) and all(isinstance(x, kind) for x in v.values())


# JSON shape -> (test, name for errors)
_SHAPES: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str), "string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "non-negative integer"),
    "bool": (lambda v: isinstance(v, bool), "boolean"),
    "object": (lambda v: isinstance(v, dict), "JSON object"),
    "str-list": (_is_str_list, "list of strings"),
    "str-map": (lambda v: _is_map_of(v, str), "map of strings"),
    "object-map": (lambda v: _is_map_of(v, dict), "map of objects"),
}


def _field(d: dict[str, Any], key: str, shape: str, what: str) -> Any:
    """``d[key]`` checked against a JSON shape (see ``_SHAPES``); None when absent or null."""
    value = d.get(key)
    if value is None:
        return None
    test, name = _SHAPES[shape]
    if not test(value):
        raise ImageError(f"reading {what}: field {key!r} is not a {name}")
    return value


def _list(d: dict[str, Any], key: str, what: str) -> list[Any]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImageError(f"reading {what}: field {key!r} is not a list")
    return value


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set key unless value is empty (Go's omitempty)."""
    if value is not None and value != "" and value != [] and value != {}:
        out[key] = value


def platform_to_json(platform: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
    _put(out, "os.version", platform.os_version)
    _put(out, "os.features", list(platform.os_features))
    _put(out, "variant", platform.variant)
    return out


def platform_from_json(d: dict[str, Any]) -> Platform:
    what = "platform"
    d = _object(d, what)
    return Platform(
        architecture=_field(d, "architecture", "str", what) or "",
        os=_field(d, "os", "str", what) or "",
        variant=_field(d, "variant", "str", what) or "",
        os_version=_field(d, "os.version", "str", what) or "",
        os_features=tuple(_field(d, "os.features", "str-list", what) or ()),
    )


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: list[str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type, "digest": self.digest, "size": self.size,
        }
        _put(out, "urls", self.urls)
        _put(out, "annotations", self.annotations)
        if self.platform is not None:
            out["platform"] = platform_to_json(self.platform)
        _put(out, "artifactType", self.artifact_type)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        what = "descriptor"
        d = _object(d, what)
        digest = _field(d, "digest", "str", what)
        size = _field(d, "size", "int", what)
        if digest is None or size is None:
            missing = "digest" if digest is None else "size"
            raise ImageError(f"reading descriptor: missing field {missing!r}")
        platform = _field(d, "platform", "object", what)
        return cls(
            media_type=_field(d, "mediaType", "str", what) or "", digest=digest, size=size,
            annotations=_field(d, "annotations", "str-map", what),
            platform=platform_from_json(platform) if platform else None,
            urls=_field(d, "urls", "str-list", what),
            artifact_type=_field(d, "artifactType", "str", what),
        )


# (attribute, JSON key, OCI-spec field?, JSON shape) of the container configuration
_CONTAINER_FIELDS: tuple[tuple[str, str, bool, str], ...] = (
    ("user", "User", True, "str"),
    ("exposed_ports", "ExposedPorts", True, "object-map"),
    ("env", "Env", True, "str-list"),
    ("entrypoint", "Entrypoint", True, "str-list"),
    ("cmd", "Cmd", True, "str-list"),
    ("volumes", "Volumes", True, "object-map"),
    ("working_dir", "WorkingDir", True, "str"),
    ("labels", "Labels", True, "str-map"),
    ("stop_signal", "StopSignal", True, "str"),
    ("args_escaped", "ArgsEscaped", True, "bool"),
    ("shell", "Shell", False, "str-list"),
    ("healthcheck", "Healthcheck", False, "object"),
    ("on_build", "OnBuild", False, "str-list"),
)


@dataclass
class ContainerConfig:
    """The runtime defaults of an image (the ``config`` object of the image config)."""

    user: str = ""
    exposed_ports: dict[str, dict[str, Any]] | None = None
    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, dict[str, Any]] | None = None
    working_dir: str = ""
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    args_escaped: bool | None = None
    shell: list[str] | None = None
    healthcheck: dict[str, Any] | None = None
    on_build: list[str] | None = None

    def to_json(self, format: str = "oci") -> dict[str, Any]:
        """Docker-only fields (Shell, Healthcheck, OnBuild) are omitted for "oci"."""
        out: dict[str, Any] = {}
        for attr, key, in_oci, _ in _CONTAINER_FIELDS:
            if in_oci or format == "docker":
                _put(out, key, getattr(self, attr))
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> ContainerConfig:
        what = "container config"
        d = _object(d or {}, what)
        values = {attr: _field(d, key, shape, what) for attr, key, _, shape in _CONTAINER_FIELDS}
        values["user"] = values["user"] or ""
        values["working_dir"] = values["working_dir"] or ""
        return cls(**values)

    def docker_only_fields(self) -> list[str]:
        """JSON keys set here that the OCI config spec has no place for."""
        return [key for attr, key, in_oci, _ in _CONTAINER_FIELDS
                if not in_oci and getattr(self, attr) is not None]


@dataclass
class History:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "created", self.created)
        _put(out, "created_by", self.created_by)
        _put(out, "author", self.author)
        _put(out, "comment", self.comment)
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> History:
        what = "history entry"
        d = _object(d, what)
        return cls(
            created=_field(d, "created", "str", what),
            created_by=_field(d, "created_by", "str", what),
            author=_field(d, "author", "str", what), comment=_field(d, "comment", "str", what),
            empty_layer=bool(_field(d, "empty_layer", "bool", what)),
        )


@dataclass
class ImageConfig:
    architecture: str
    os: str
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: list[str] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    os_version: str | None = None
    os_features: list[str] | None = None

    def to_json(self, format: str = "oci") -> bytes:
        if format not in FORMATS:
            raise ImageError(f"writing image config: unknown format {format!r}")
        out: dict[str, Any] = {}
        _put(out, "created", self.created)
        _put(out, "author", self.author)
        out["architecture"] = self.architecture
        out["os"] = self.os
        _put(out, "os.version", self.os_version)
        _put(out, "os.features", self.os_features)
        _put(out, "variant", self.variant)
        out["config"] = self.config.to_json(format)
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        _put(out, "history", [h.to_json() for h in self.history])
        return _dumps(out)

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> ImageConfig:
        what = "image config"
        d = _loads(data, what)
        rootfs = _field(d, "rootfs", "object", what) or {}
        return cls(
            architecture=_field(d, "architecture", "str", what) or "",
            os=_field(d, "os", "str", what) or "",
            variant=_field(d, "variant", "str", what),
            created=_field(d, "created", "str", what),
            author=_field(d, "author", "str", what),
            config=ContainerConfig.from_json(_field(d, "config", "object", what)),
            diff_ids=list(_field(rootfs, "diff_ids", "str-list", "image config rootfs") or []),
            history=[History.from_json(h) for h in _list(d, "history", what)],
            os_version=_field(d, "os.version", "str", what),
            os_features=_field(d, "os.features", "str-list", what),
        )


@dataclass
class Manifest:
    config: Descriptor
    layers: list[Descriptor]
    media_type: str = MEDIA_OCI_MANIFEST
    annotations: dict[str, str] | None = None

    def to_json(self) -> bytes:
        """The manifest's bytes, exactly as stored (its digest names it)."""
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type,
                               "config": self.config.to_json(),
                               "layers": [layer.to_json() for layer in self.layers]}
        _put(out, "annotations", self.annotations)
        return _dumps(out)

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> Manifest:
        what = "manifest"
        d = _loads(data, what)
        if "config" not in d:
            raise ImageError("reading manifest: no config descriptor")
        return cls(
            config=Descriptor.from_json(d["config"]),
            layers=[Descriptor.from_json(x) for x in _list(d, "layers", what)],
            media_type=_field(d, "mediaType", "str", what) or MEDIA_OCI_MANIFEST,
            annotations=_field(d, "annotations", "str-map", what),
        )


@dataclass
class Index:
    manifests: list[Descriptor] = field(default_factory=list)
    annotations: dict[str, str] | None = None
    media_type: str = MEDIA_OCI_INDEX

    def to_json(self) -> bytes:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type,
                               "manifests": [m.to_json() for m in self.manifests]}
        _put(out, "annotations", self.annotations)
        return _dumps(out)

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> Index:
        what = "image index"
        d = _loads(data, what)
        return cls(
            manifests=[Descriptor.from_json(x) for x in _list(d, "manifests", what)],
            annotations=_field(d, "annotations", "str-map", what),
            media_type=_field(d, "mediaType", "str", what) or MEDIA_OCI_INDEX,
        )

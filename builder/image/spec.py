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
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"reading {what}: invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ImageError(f"reading {what}: expected a JSON object")
    return obj


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set key unless value is empty (Go's omitempty)."""
    if value is not None and value != "" and value != [] and value != {}:
        out[key] = value


@dataclass
class Platform:
    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = None
    os_features: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        _put(out, "os.version", self.os_version)
        _put(out, "os.features", self.os_features)
        _put(out, "variant", self.variant)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Platform:
        return cls(
            architecture=d.get("architecture", ""), os=d.get("os", ""),
            variant=d.get("variant"), os_version=d.get("os.version"),
            os_features=d.get("os.features"),
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
            out["platform"] = self.platform.to_json()
        _put(out, "artifactType", self.artifact_type)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=d.get("mediaType", ""), digest=d["digest"], size=int(d["size"]),
                annotations=d.get("annotations"),
                platform=Platform.from_json(d["platform"]) if d.get("platform") else None,
                urls=d.get("urls"), artifact_type=d.get("artifactType"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"reading descriptor: missing or bad field {exc}") from exc


# (attribute, JSON key, OCI-spec field?) of the container configuration
_CONTAINER_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("user", "User", True),
    ("exposed_ports", "ExposedPorts", True),
    ("env", "Env", True),
    ("entrypoint", "Entrypoint", True),
    ("cmd", "Cmd", True),
    ("volumes", "Volumes", True),
    ("working_dir", "WorkingDir", True),
    ("labels", "Labels", True),
    ("stop_signal", "StopSignal", True),
    ("args_escaped", "ArgsEscaped", True),
    ("shell", "Shell", False),
    ("healthcheck", "Healthcheck", False),
    ("on_build", "OnBuild", False),
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
        for attr, key, in_oci in _CONTAINER_FIELDS:
            if in_oci or format == "docker":
                _put(out, key, getattr(self, attr))
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> ContainerConfig:
        d = d or {}
        values = {attr: d.get(key) for attr, key, _ in _CONTAINER_FIELDS}
        values["user"] = values["user"] or ""
        values["working_dir"] = values["working_dir"] or ""
        return cls(**values)

    def docker_only_fields(self) -> list[str]:
        """JSON keys set here that the OCI config spec has no place for."""
        return [key for attr, key, in_oci in _CONTAINER_FIELDS
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
        return cls(
            created=d.get("created"), created_by=d.get("created_by"), author=d.get("author"),
            comment=d.get("comment"), empty_layer=bool(d.get("empty_layer", False)),
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
        d = _loads(data, "image config")
        rootfs = d.get("rootfs") or {}
        return cls(
            architecture=d.get("architecture", ""), os=d.get("os", ""),
            variant=d.get("variant"), created=d.get("created"), author=d.get("author"),
            config=ContainerConfig.from_json(d.get("config")),
            diff_ids=list(rootfs.get("diff_ids") or []),
            history=[History.from_json(h) for h in d.get("history") or []],
            os_version=d.get("os.version"), os_features=d.get("os.features"),
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
        d = _loads(data, "manifest")
        if "config" not in d:
            raise ImageError("reading manifest: no config descriptor")
        return cls(
            config=Descriptor.from_json(d["config"]),
            layers=[Descriptor.from_json(x) for x in d.get("layers") or []],
            media_type=d.get("mediaType") or MEDIA_OCI_MANIFEST,
            annotations=d.get("annotations"),
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
        d = _loads(data, "image index")
        return cls(
            manifests=[Descriptor.from_json(x) for x in d.get("manifests") or []],
            annotations=d.get("annotations"),
            media_type=d.get("mediaType") or MEDIA_OCI_INDEX,
        )

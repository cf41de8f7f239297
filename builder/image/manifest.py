"""Manifests from a config and layers, in OCI or Docker v2s2 form."""

from __future__ import annotations

from collections.abc import Sequence

from builder.errors import ImageError
from builder.image.spec import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    Manifest,
)

_TO_DOCKER = {
    MEDIA_OCI_LAYER_GZIP: MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_OCI_LAYER: MEDIA_DOCKER_LAYER,
}
_TO_OCI = {docker: oci for oci, docker in _TO_DOCKER.items()}


def layer_media_type(media_type: str, format: str) -> str:
    """A layer media type in the given manifest format; ImageError if it has none."""
    table = _TO_DOCKER if format == "docker" else _TO_OCI
    if media_type in table:
        return table[media_type]
    if media_type in table.values() or format == "oci":
        return media_type
    raise ImageError(f"writing {format} manifest: no {format} media type for {media_type!r}")


def build_manifest(
    config_descriptor: Descriptor, layers: Sequence[Descriptor], *, format: str = "oci",
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """A manifest in the given format, converting layer media types as needed."""
    if format not in ("oci", "docker"):
        raise ImageError(f"writing manifest: unknown format {format!r} (expected oci or docker)")
    config_type = MEDIA_DOCKER_CONFIG if format == "docker" else MEDIA_OCI_CONFIG
    return Manifest(
        config=Descriptor(config_type, config_descriptor.digest, config_descriptor.size),
        layers=[Descriptor(layer_media_type(x.media_type, format), x.digest, x.size,
                           annotations=x.annotations, urls=x.urls) for x in layers],
        media_type=MEDIA_DOCKER_MANIFEST if format == "docker" else MEDIA_OCI_MANIFEST,
        annotations=annotations if format == "oci" else None,
    )

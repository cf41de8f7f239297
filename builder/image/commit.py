"""Turn a config and layer blobs into a stored, named image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from builder.errors import ImageError
from builder.image.layer import LayerResult
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
    ImageConfig,
    Manifest,
)

if TYPE_CHECKING:
    from builder.store import ImageRecord, Store

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


def commit_image(
    store: Store,
    config: ImageConfig,
    layers: Sequence[LayerResult | Descriptor],
    *,
    format: str = "oci",
    annotations: dict[str, str] | None = None,
    names: Sequence[str] = (),
) -> ImageRecord:
    """Write config and manifest blobs and record the image under names.

    config.diff_ids lists every layer's diff_id; when it is empty it is filled
    from the LayerResults. The diff_ids of LayerResults must match their place.
    """
    descriptors = [
        Descriptor(x.media_type, x.digest, x.size) if isinstance(x, LayerResult) else x
        for x in layers
    ]
    if not config.diff_ids and all(isinstance(x, LayerResult) for x in layers):
        config.diff_ids = [x.diff_id for x in layers]  # type: ignore[union-attr]
    if len(config.diff_ids) != len(descriptors):
        raise ImageError(
            f"committing image: {len(descriptors)} layers but {len(config.diff_ids)} diff_ids"
        )
    for position, (layer, diff_id) in enumerate(zip(layers, config.diff_ids), 1):
        if isinstance(layer, LayerResult) and layer.diff_id != diff_id:
            raise ImageError(
                f"committing image: layer {position} has diff_id {layer.diff_id}, "
                f"the config says {diff_id}"
            )
    config_digest, config_size = store.layout.put_blob(config.to_json(format))
    manifest = build_manifest(
        Descriptor(MEDIA_OCI_CONFIG, config_digest, config_size), descriptors,
        format=format, annotations=annotations,
    )
    return store.put_manifest(manifest.to_json(), names)

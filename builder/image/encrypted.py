"""Encrypted layers (ocicrypt, media types ending in ``+encrypted``) are refused.

pybuild does not implement ocicrypt, so ``bud --decryption-key`` is accepted for
Buildah's command lines and every encrypted layer is an error that says how to
get a decrypted copy, before anything tries to unpack it.
"""

from __future__ import annotations

from builder.errors import ImageError
from builder.image.spec import Descriptor, Manifest

__all__ = ["ENCRYPTED_SUFFIX", "refuse_encrypted", "refuse_encrypted_layer"]

ENCRYPTED_SUFFIX = "+encrypted"


def refuse_encrypted(manifest: Manifest, image: str) -> None:
    """An ``ImageError`` naming the first encrypted layer of ``image``, if any."""
    for layer in manifest.layers:
        refuse_encrypted_layer(layer, image)


def refuse_encrypted_layer(layer: Descriptor, image: str) -> None:
    """An ``ImageError`` when ``layer`` (of ``image``) is encrypted."""
    if layer.media_type.endswith(ENCRYPTED_SUFFIX):
        raise ImageError(
            f"using image {image!r}: layer {layer.digest} is encrypted "
            f"({layer.media_type}); pybuild cannot decrypt layers (ocicrypt is not "
            "implemented), with or without --decryption-key",
            hint="decrypt a copy first (skopeo copy --decryption-key KEY SRC oci:DIR), "
                 "then build FROM oci:DIR",
        )

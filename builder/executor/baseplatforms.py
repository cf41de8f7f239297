"""``bud --all-platforms``: the platforms every base image of the build offers.

As Buildah's ``platformsForBaseImages``: each base image (``scratch`` and stages
left out, ``--from`` and ``--build-context`` applied) must name a manifest list;
the result is the platforms all of them list, in the first list's order. A base
is looked up as an ``oci:``/``oci-archive:`` layout's index, a manifest list in
the local store (``pybuild manifest create``), or a registry's list.
"""

from __future__ import annotations

import json

from builder.errors import ImageError, ManifestListNotFound, PybuildError, UsageError
from builder.executor.build import BuildOptions, plan_build
from builder.image.spec import INDEX_TYPES, Index
from builder.plan.graph import SCRATCH
from builder.platform import Platform
from builder.registry.client import RegistryOptions, inspect_remote
from builder.store import Store
from builder.store.manifests import find_manifest_list
from builder.store.transports import parse_transport, read_image_index

__all__ = ["base_platforms"]


def base_platforms(store: Store, options: BuildOptions) -> list[Platform]:
    """The platforms common to the base images of the build ``options`` describes."""
    plan = plan_build(store, options)
    images = list(dict.fromkeys(
        p.base.image for p in plan.stages
        if p.base.image is not None and p.base.image.lower() != SCRATCH))
    if not images:
        raise UsageError("checking --all-platforms: the build uses no base image but scratch")
    common: list[Platform] | None = None
    for image in images:
        offered = _platforms_of(store, image, options)
        common = offered if common is None else [p for p in common if p in offered]
    if not common:
        raise UsageError(f"checking --all-platforms: base images {', '.join(images)} have no "
                         "platforms in common")
    return common


def _from_index(data: bytes, image: str) -> list[Platform]:
    index = Index.from_json(data)
    found: list[Platform] = []
    for entry in index.manifests:
        if entry.platform is None:
            continue
        platform = entry.platform.normalized()
        if platform not in found:
            found.append(platform)
    if not found:
        raise ImageError(f"checking --all-platforms: base image {image!r}: its manifest list "
                         "names no platforms")
    return found


def _not_a_list(image: str) -> ImageError:
    return ImageError(f"checking --all-platforms: base image {image!r} is not a manifest list",
                      hint="--all-platforms needs base images that list platforms; name them "
                           "with --platform instead")


def _platforms_of(store: Store, image: str, options: BuildOptions) -> list[Platform]:
    transport, rest = parse_transport(image)
    if transport in ("oci", "oci-archive"):
        index = read_image_index(store, image)
        if index is None:
            raise _not_a_list(image)
        return _from_index(index, image)
    if transport == "docker-archive":
        raise _not_a_list(image)
    try:
        return _from_index(find_manifest_list(store, rest).to_json(), image)
    except ManifestListNotFound:
        pass
    registry = options.registry() if callable(options.registry) else options.registry
    try:
        data = inspect_remote(rest, registry or RegistryOptions(), raw=True)
    except PybuildError as exc:
        raise ImageError(f"checking --all-platforms: reading base image {image!r}: {exc}") \
            from exc
    assert isinstance(data, bytes)
    if json.loads(data).get("mediaType") not in INDEX_TYPES and \
            "manifests" not in json.loads(data):
        raise _not_a_list(image)
    return _from_index(data, image)

"""``--squash`` and ``--squash-all``: what an image's config says once some of its
layers are merged into one."""

from __future__ import annotations

import copy

from builder.image.layer import Layer
from builder.image.spec import ImageConfig


def squashed_config(config: ImageConfig, kept: list[Layer], merged: Layer | None
                    ) -> ImageConfig:
    """``config`` for the layers ``kept`` (the bottom ones, unchanged) plus ``merged`` (the
    rest as one, None when they changed nothing). History entries stay; those of merged
    layers are marked empty, but the last entry carries the merged layer."""
    out = copy.deepcopy(config)
    out.diff_ids = [layer.diff_id for layer in kept] + ([merged.diff_id] if merged else [])
    seen = 0
    for entry in out.history:  # history entries of the kept layers stay as they were
        if not entry.empty_layer:
            seen += 1
            if seen > len(kept):
                entry.empty_layer = True
    if merged is not None and out.history:
        out.history[-1].empty_layer = False
    return out

"""``--squash`` and ``--squash-all``: the target stage's layers merged into one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.executor.build import BuildState
    from builder.executor.stage import StageResult


def squash(state: BuildState, final: StageResult, *, everything: bool) -> None:
    """Replace the layers the target stage added (``everything``: all layers) with one
    layer of their combined changes; history entries stay, marked empty but the last."""
    from builder.image.layer import write_layer
    from builder.rootfs.extract import extract_layer
    from builder.rootfs.workspace import Workspace

    config = final.config
    base_count = 0 if everything else _base_layer_count(state, final)
    triples = final.layer_triples()
    if len(triples) - base_count <= 1 and not everything:
        return
    final.drop_workspace()
    kept = list(final.layers[:base_count])
    with Workspace.create(state.store, triples[:base_count], driver=state.options.driver) as ws:
        for digest, diff_id, media_type in triples[base_count:]:
            with state.store.layout.open_blob(digest) as blob:
                extract_layer(blob, media_type, ws.root, layer_digest=digest, diff_id=diff_id,
                              whiteouts="apply")
        entries = ws.changes()
        layer = write_layer(entries, state.store.layout, compression=state.options.compression,
                            timestamp=state.options.timestamp, format=state.layer_format) \
            if entries else None
    final.layers = [*kept, *([layer] if layer else [])]
    config.diff_ids = [*config.diff_ids[:base_count], *([layer.diff_id] if layer else [])]
    history = config.history
    seen = 0
    for entry in history:  # history entries of the base's layers stay as they were
        if not entry.empty_layer:
            seen += 1
            if seen > base_count:
                entry.empty_layer = True
    if layer is not None and history:
        history[-1].empty_layer = False


def _base_layer_count(state: BuildState, final: StageResult) -> int:
    """How many layers the target stage's base had."""
    ref = final.plan.base
    if ref.stage is not None:
        return len(state.results[ref.stage].config.diff_ids)
    assert ref.image is not None
    config, _, _ = state.base_image(ref.image, None)
    return len(config.diff_ids)

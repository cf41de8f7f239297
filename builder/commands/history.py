"""``pybuild history IMAGE`` and ``pybuild tree IMAGE``: what made each layer, and how big.

``history`` prints the image's history as ``podman image history`` does: newest
first, one row per step (``ID`` is the image's for the newest row and
``<missing>`` below, as Docker prints it), the instruction that made it, and the
size of the layer it made (uncompressed, as Podman and Docker count it; ``0 B`` for
a step that made none). ``--format`` takes a Go template over ``.ID``,
``.Created``, ``.CreatedBy``, ``.Size``, ``.Comment`` (and ``.CompressedSize``,
``.Layer``); ``json`` prints the rows as JSON.

``tree`` draws the layers alone, bottom first, each with its uncompressed and
stored sizes, its digest and the instruction that made it: what to look at when
shrinking an image.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from builder.commands.argparsing import BoolFlag

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import ImageRecord, Store

_CHUNK = 1 << 20


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add = parser.add_argument
    add("image", help="image name or ID")
    add("--no-trunc", action="store_true", help="do not shorten IDs and instructions")
    if name == "history":
        add("--format", default=None, metavar="TEMPLATE",
            help="a Go template per row ('table ...' adds headers), or json")
        add("-H", "--human", action=BoolFlag, default=True,
            help="sizes and dates for people (default true)")
        add("-q", "--quiet", action="store_true", help="print the IDs only")


@dataclass
class Step:
    """One history entry with the layer it made, if any."""

    created: str
    created_by: str
    comment: str
    layer: str | None  # the layer's digest
    size: int  # uncompressed bytes (0 without a layer)
    compressed: int


def steps(store: Store, record: ImageRecord) -> list[Step]:
    """The image's history entries, oldest first, paired with their layers. Layers
    without history (an image written without it) get an entry of their own."""
    layers = list(record.manifest.layers)
    out: list[Step] = []
    for entry in record.config.history:
        layer = None if entry.empty_layer or not layers else layers.pop(0)
        out.append(Step(entry.created or "", entry.created_by or "", entry.comment or "",
                        layer.digest if layer else None,
                        uncompressed_size(store, layer) if layer else 0,
                        layer.size if layer else 0))
    for layer in layers:
        out.append(Step("", "", "", layer.digest, uncompressed_size(store, layer), layer.size))
    return out


def uncompressed_size(store: Store, layer: Any) -> int:
    """A layer's size as a tar, its blob decompressed once and counted."""
    from builder.image.compress import open_decompressed

    compression = "zstd" if layer.media_type.endswith("zstd") else \
        "gzip" if layer.media_type.endswith(("gzip", ".tar.gz")) else "none"
    total = 0
    with store.layout.open_blob(layer.digest) as raw:
        stream = cast(BinaryIO, open_decompressed(raw, compression)) \
            if compression != "none" else raw
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    return total


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.store.transports import read_image

    store = open_store(options.root)
    record = read_image(store, args.image)
    found = steps(store, record)
    if args.command == "tree":
        print("\n".join(tree_lines(record, found, no_trunc=args.no_trunc)))
        return 0
    rows = _history_rows(record, found, human=args.human, no_trunc=args.no_trunc)
    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    if (args.format or "").strip() == "json":
        print(json.dumps([{k: v for k, v in row.items() if not k.startswith("_")}
                          for row in rows], indent=4))
        return 0
    from builder.commands.images import render_rows

    template = args.format or ("table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t"
                               "{{.Comment}}")
    for line in render_rows(template, rows):
        print(line)
    return 0


def _history_rows(record: ImageRecord, found: list[Step], *, human: bool,
                  no_trunc: bool) -> list[dict[str, Any]]:
    from builder.commands.images import human_age, human_size

    rows = []
    for position, step in enumerate(reversed(found)):
        image_id = record.id if no_trunc else record.id[7:19]
        created_by = step.created_by
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": image_id if position == 0 else "<missing>",
            "Created": human_age(step.created) if human else step.created,
            "CreatedBy": created_by,
            "Size": human_size(step.size) if human else step.size,
            "CompressedSize": human_size(step.compressed) if human else step.compressed,
            "Comment": step.comment,
            "Layer": step.layer or "",
        })
    return rows


def tree_lines(record: ImageRecord, found: list[Step], *, no_trunc: bool = False
               ) -> list[str]:
    """The layers, bottom first, drawn as a tree under the image."""
    from builder.commands.images import human_size

    layered = [s for s in found if s.layer is not None]
    total = sum(s.size for s in layered)
    names = ", ".join(record.names) or "<none>"
    lines = [f"Image ID: {record.id[7:19]}", f"Tags:     [{names}]",
             f"Size:     {human_size(total)} in {len(layered)} "
             f"layer{'s' if len(layered) != 1 else ''} "
             f"({human_size(sum(s.compressed for s in layered))} stored)",
             "Image Layers"]
    for position, step in enumerate(layered):
        last = position == len(layered) - 1
        branch = "└──" if last else "├──"
        made_by = " ".join(step.created_by.split()) or "(no history)"
        if not no_trunc and len(made_by) > 80:
            made_by = made_by[:79] + "…"
        assert step.layer is not None
        lines.append(f"{branch} {human_size(step.size):>9}  {step.layer[7:19]}  {made_by}")
    return lines

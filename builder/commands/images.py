"""``pybuild images``: list the images in the local store."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import ImageRecord


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--digests", action="store_true", help="show manifest digests")
    parser.add_argument("--no-trunc", action="store_true", help="show full image IDs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store

    records = open_store(options.root).images()
    if args.json:
        import json

        print(json.dumps([_json(r) for r in records], indent=4))
        return 0
    if args.quiet:
        for image_id in dict.fromkeys(_id(r.id, args.no_trunc) for r in records):
            print(image_id)
        return 0
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else [])
    rows = [header + ["IMAGE ID", "CREATED", "SIZE"]]
    for record in records:
        for repo, tag in _repo_tags(record):
            digest = [record.manifest_digest] if args.digests else []
            rows.append([repo, tag, *digest, _id(record.id, args.no_trunc),
                         human_age(record.created), human_size(record.size)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _id(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id[7:19]


def _repo_tags(record: ImageRecord) -> list[tuple[str, str]]:
    from builder.store import split_name

    return [split_name(n) for n in record.names] or [("<none>", "<none>")]


def _json(record: ImageRecord) -> dict[str, object]:
    return {
        "id": record.id[7:], "names": list(record.names), "digest": record.manifest_digest,
        "created": record.created, "createdat": human_age(record.created), "size": record.size,
    }


def human_age(created: str | None) -> str:
    """"3 hours ago", as Docker and Buildah print ages."""
    from datetime import datetime, timezone

    if not created:
        return "unknown"
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "unknown"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400),
                       ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a second ago"


def human_size(size: float) -> str:
    """Decimal units with three significant digits ("1.23 MB")."""
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while size >= 1000 and step < len(units) - 1:
        size /= 1000
        step += 1
    return f"{size:.3g} {units[step]}"

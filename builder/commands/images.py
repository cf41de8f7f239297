"""``pybuild images``: list the images in the local store, as ``buildah images`` does.

``--format`` takes a Go template over the fields Buildah's has (``.ID``, ``.Name``,
``.Tag``, ``.Digest``, ``.CreatedAt``, ``.CreatedAtRaw``, ``.Created``, ``.Size``,
``.ReadOnly``, ``.History``; ``.Repository`` as Podman spells ``.Name``); a
``table`` prefix adds the header and aligns the columns; ``json`` is ``--json``.
``--json`` prints Buildah's JSON objects. ``--filter KEY=VALUE`` takes libimage's
filters: several values of one key are alternatives, different keys (and several
``label=`` filters) must all match. ``--sort`` is Podman's (created, newest first,
by default). ``--all`` is accepted: pybuild keeps no intermediate images (its step
cache is not made of images), so every image is always listed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.store import ImageRecord

NONE = "<none>"
HEADERS = {"name": "REPOSITORY", "repository": "REPOSITORY", "tag": "TAG", "id": "IMAGE ID",
           "digest": "DIGEST", "createdat": "CREATED", "created": "CREATED",
           "createdatraw": "CREATED", "size": "SIZE", "readonly": "R/O",
           "history": "HISTORY", "names": "NAMES", "createdby": "CREATED BY",
           "comment": "COMMENT", "compressedsize": "STORED SIZE", "layer": "LAYER"}
FILTERS = ("after", "before", "dangling", "digest", "id", "intermediate", "label", "readonly",
           "reference", "since", "until")
SORT_KEYS = ("created", "id", "repository", "size", "tag")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add = parser.add_argument
    add("image", nargs="?", default=None, help="list only images whose name matches")
    add("-a", "--all", action="store_true",
        help="show all images (pybuild keeps no intermediate images: no effect)")
    add("--digests", action="store_true", help="show manifest digests")
    add("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
        help=f"show only matching images; keys: {', '.join(FILTERS)}")
    add("--format", default=None, metavar="TEMPLATE",
        help="a Go template per image ('table ...' adds headers), or json")
    add("--json", action="store_true", help="print JSON")
    add("-n", "--noheading", action="store_true", help="no column headings")
    add("--no-trunc", action="store_true", help="show full image IDs")
    add("-q", "--quiet", action="store_true", help="print image IDs only")
    add("--history", action="store_true", help="show the names an image had before")
    add("--sort", choices=SORT_KEYS, default="created",
        help="order of the rows (default: created, newest first)")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands import open_store
    from builder.errors import UsageError

    if args.quiet and args.format:
        raise UsageError("checking --quiet: cannot be used with --format")
    records = open_store(options.root).images()
    filters = [*args.filter] + ([f"reference={args.image}"] if args.image else [])
    records = [r for r in records if matches(r, parse_filters(filters), records)]
    rows = sort_rows([row for r in records for row in _rows(r, args.no_trunc)], args.sort)
    if args.json or (args.format or "").strip() == "json":
        print(json.dumps(_json(records, args.no_trunc), indent=4))
        return 0
    if args.quiet:
        for image_id in dict.fromkeys(row["ID"] for row in rows):
            print(image_id)
        return 0
    template = args.format if args.format is not None else _default_format(args)
    for line in render_rows(template, rows):
        print(line)
    return 0


def _default_format(args: argparse.Namespace) -> str:
    columns = ["{{.Name}}", "{{.Tag}}"] + (["{{.Digest}}"] if args.digests else []) + \
        ["{{.ID}}", "{{.CreatedAt}}", "{{.Size}}"] + (["{{.History}}"] if args.history else [])
    return ("" if args.noheading else "table ") + "\t".join(columns)


def _rows(record: ImageRecord, no_trunc: bool) -> list[dict[str, Any]]:
    from builder.store import split_name

    created = _created(record.created)
    base: dict[str, Any] = {
        "ID": record.id if no_trunc else record.id[7:19],
        "Digest": record.manifest_digest,
        "Created": int(created.timestamp()) if created else 0,
        "CreatedAt": human_age(record.created),
        "CreatedAtRaw": record.created or "",
        "Size": human_size(record.size),
        "ReadOnly": False,
        "History": NONE,
        "Names": list(record.names),
        "_size": record.size,
    }
    pairs = [split_name(n) for n in record.names] or [(NONE, NONE)]
    return [{**base, "Name": repo, "Repository": repo, "Tag": tag} for repo, tag in pairs]


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Podman's orders: created (newest first), id, repository, size (largest first),
    tag; ties keep the store's order."""
    if key == "created":
        return sorted(rows, key=lambda r: r["CreatedAtRaw"], reverse=True)
    if key == "size":
        return sorted(rows, key=lambda r: r["_size"], reverse=True)
    field = {"id": "ID", "repository": "Name", "tag": "Tag"}[key]
    return sorted(rows, key=lambda r: r[field])


def render_rows(template: str, rows: list[dict[str, Any]]) -> list[str]:
    """Each row through the template; with a ``table`` prefix, a header from the
    fields' names and columns aligned as Go's tabwriter aligns them."""
    from builder.commands.template import render

    template = template.replace("\\t", "\t").replace("\\n", "\n")
    table = template.startswith("table")
    if not table:
        return [render(template, row) for row in rows]
    cells = template[len("table"):].strip().split("\t")
    lines = [[_header(cell) for cell in cells]]
    lines += [[render(cell, row) for cell in cells] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cells))]
    return ["   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]


def _header(cell: str) -> str:
    import re

    def name(match: re.Match[str]) -> str:
        field = match.group(1).rsplit(".", 1)[-1]
        return HEADERS.get(field.lower(), field.upper())

    return re.sub(r"{{-?\s*(?:json\s+)?\.([A-Za-z.]+)[^}]*}}", name, cell)


def _json(records: list[ImageRecord], no_trunc: bool) -> list[dict[str, Any]]:
    """Buildah's ``images --json`` objects."""
    out = []
    for record in sorted(records, key=lambda r: r.created or "", reverse=True):
        created = _created(record.created)
        out.append({
            "id": record.id[7:] if no_trunc else record.id[7:19],
            "names": list(record.names),
            "digest": record.manifest_digest,
            "createdat": human_age(record.created),
            "size": human_size(record.size),
            "created": int(created.timestamp()) if created else 0,
            "createdatraw": record.created or "",
            "readonly": False,
            "history": None,
        })
    return out


# filters


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` filters (a value may hold several, comma-separated) by key."""
    from builder.errors import UsageError

    found: dict[str, list[str]] = {}
    for raw in values:
        for item in raw.split(","):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or key not in FILTERS:
                raise UsageError(f"parsing --filter {item!r}: expected KEY=VALUE with KEY one "
                                 f"of {', '.join(FILTERS)}")
            found.setdefault(key, []).append(value)
    return found


def matches(record: ImageRecord, filters: dict[str, list[str]],
            records: list[ImageRecord]) -> bool:
    for key, values in filters.items():
        test = _FILTER_TESTS[key]
        if key == "label":
            if not all(test(record, v, records) for v in values):
                return False
        elif not any(test(record, v, records) for v in values):
            return False
    return True


def _bool(text: str) -> bool:
    from builder.errors import UsageError

    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise UsageError(f"parsing --filter: expected true or false, not {text!r}")


def _created(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _other(value: str, records: list[ImageRecord]) -> datetime:
    from builder.errors import UsageError
    from builder.store import normalize_name

    for record in records:
        if value in record.names or record.id[7:].startswith(value.removeprefix("sha256:")) \
                or normalize_name(value) in record.names:
            when = _created(record.created)
            if when is not None:
                return when
    raise UsageError(f"parsing --filter: no image {value!r}")


def _until(value: str) -> datetime:
    """A time (seconds since the epoch or RFC 3339) or a duration before now."""
    from datetime import timedelta

    from builder.commands.build import parse_duration
    from builder.errors import UsageError

    if value.isdigit():
        return datetime.fromtimestamp(int(value), timezone.utc)
    when = _created(value)
    if when is not None:
        return when
    try:
        return datetime.now(timezone.utc) - timedelta(seconds=parse_duration(value))
    except UsageError:
        raise UsageError(f"parsing --filter until={value!r}: expected a time or a duration") \
            from None


def _reference(record: ImageRecord, pattern: str) -> bool:
    """libimage's reference filter: a glob on the full name, on the name without its
    tag, or on the short forms (no ``localhost/`` or ``docker.io/library/``)."""
    for name in record.names:
        repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        short = [name.removeprefix(p) for p in ("localhost/", "docker.io/library/",
                                                 "docker.io/") if name.startswith(p)]
        short_repo = [repo.removeprefix(p) for p in ("localhost/", "docker.io/library/",
                                                     "docker.io/") if repo.startswith(p)]
        if any(fnmatch.fnmatchcase(c, pattern) for c in (name, repo, *short, *short_repo)):
            return True
    return False


def _label(record: ImageRecord, spec: str) -> bool:
    key, sep, value = spec.partition("=")
    labels = record.config.config.labels or {}
    return key in labels and (not sep or labels[key] == value)


def _when(record: ImageRecord) -> datetime:
    return _created(record.created) or datetime.fromtimestamp(0, timezone.utc)


_FILTER_TESTS: dict[str, Any] = {
    "after": lambda r, v, rs: _when(r) > _other(v, rs),
    "since": lambda r, v, rs: _when(r) > _other(v, rs),
    "before": lambda r, v, rs: _when(r) < _other(v, rs),
    "dangling": lambda r, v, rs: (not r.names) == _bool(v),
    "digest": lambda r, v, rs: r.manifest_digest == v,
    "id": lambda r, v, rs: r.id[7:].startswith(v.removeprefix("sha256:")),
    "intermediate": lambda r, v, rs: not _bool(v),
    "label": lambda r, v, rs: _label(r, v),
    "readonly": lambda r, v, rs: not _bool(v),
    "reference": lambda r, v, rs: _reference(r, v),
    "until": lambda r, v, rs: _when(r) < _until(v),
}


def human_age(created: str | None) -> str:
    """"3 hours ago", as Docker and Buildah print ages."""
    when = _created(created)
    if when is None:
        return "unknown"
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

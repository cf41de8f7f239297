"""``pybuild bake``: build the ``build:`` sections of a Compose file, services in parallel.

All services share one store and one layer cache; a step two services have in
common (a shared base stage) runs once and the other service finds it cached.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.executor.build import BuildOptions

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add = parser.add_argument
    add("services", nargs="*", metavar="SERVICE", help="services to build (default: all)")
    add("-f", "--file", default=None, help="Compose file (default: compose.yaml)")
    add("--push", action="store_true", help="push each service's image after building")
    add("--jobs", type=int, default=0, metavar="N",
        help="services (and stages) built at once (default: one per CPU)")
    add("--no-cache", action="store_true", help="run every step, ignoring the cache")
    add("--timestamp", type=int, default=None, metavar="SECONDS",
        help="created time and layer mtimes")
    add("--cache-from", action="append", default=[], metavar="REGISTRY/REPO",
        help="look steps up in this registry cache (repeatable)")
    add("--cache-to", default=None, metavar="REGISTRY/REPO",
        help="send each step's result to this registry cache")
    add("-q", "--quiet", action="store_true", help="print only the image IDs")


@dataclass(frozen=True)
class Service:
    """One service with a ``build:`` section."""

    name: str
    context: Path
    dockerfile: str | None
    args: dict[str, str]
    target: str | None
    tags: tuple[str, ...]


def _find_file(explicit: str | None) -> Path:
    from builder.errors import UsageError

    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"reading Compose file {explicit!r}: no such file")
        return path
    for name in DEFAULT_FILES:
        if Path(name).is_file():
            return Path(name)
    raise UsageError("reading Compose file: no compose.yaml here (pass -f FILE)")


def _args(raw: Any, where: str) -> dict[str, str]:
    from builder.errors import UsageError

    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    raise UsageError(f"reading {where}: build args must be a mapping or a list")


def load_services(path: Path) -> list[Service]:
    """The services of a Compose file that have a ``build:`` section, in file order."""
    import yaml

    from builder.errors import UsageError

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"reading Compose file {path}: {exc}") from exc
    services = (document or {}).get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        raise UsageError(f"reading Compose file {path}: no services")
    out: list[Service] = []
    for name, spec in services.items():
        build = (spec or {}).get("build") if isinstance(spec, dict) else None
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, dict):
            raise UsageError(f"reading service {name!r}: build must be a path or a mapping")
        where = f"service {name!r} of {path}"
        tags = [str(t) for t in build.get("tags") or []]
        if spec.get("image"):
            tags.insert(0, str(spec["image"]))
        out.append(Service(
            name=str(name),
            context=(path.parent / str(build.get("context", "."))).resolve(),
            dockerfile=build.get("dockerfile"),
            args=_args(build.get("args"), where),
            target=build.get("target"),
            tags=tuple(tags) or (f"{path.parent.resolve().name}-{name}",),
        ))
    return out


def _options(service: Service, args: argparse.Namespace, driver: str | None) -> BuildOptions:
    from builder.context import open_context, read_containerfile
    from builder.executor.build import BuildOptions
    from builder.platform import parse_platform

    context = open_context(service.context)
    file = str(context / service.dockerfile) if service.dockerfile else None
    return BuildOptions(
        context=context, containerfile=read_containerfile(context, file),
        platform=parse_platform(None), tags=service.tags, build_args=service.args,
        target=service.target, timestamp=args.timestamp, driver=driver,
        no_cache=args.no_cache, jobs=args.jobs, cache_from=tuple(args.cache_from),
        cache_to=args.cache_to,
    )


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    import os
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from builder.commands import open_store
    from builder.errors import PybuildError, UsageError
    from builder.executor.build import build
    from builder.executor.output import LineWriter, Progress

    path = _find_file(args.file)
    services = load_services(path)
    if args.services:
        known = {s.name for s in services}
        unknown = [name for name in args.services if name not in known]
        if unknown:
            raise UsageError(f"baking: no service with a build section named {unknown[0]!r}")
        services = [s for s in services if s.name in args.services]
    prepared = [(s, _options(s, args, options.storage_driver)) for s in services]
    store = open_store(options.root)
    out = LineWriter(sys.stdout)

    class Prefixed(Progress):
        def __init__(self, name: str) -> None:
            super().__init__(quiet=args.quiet, out=out)  # type: ignore[arg-type]
            self.name = name

        def _line(self, text: str, replayable: bool = True) -> None:
            super()._line(f"[{self.name}] {text}", replayable)

    def one(item: tuple[Service, BuildOptions]) -> str:
        service, build_options = item
        result = build(store, build_options, Prefixed(service.name))
        if args.push:
            from builder.store.transports import push_image

            for tag in service.tags:
                push_image(store, tag, tag)
        return result.image_id

    jobs = args.jobs or os.cpu_count() or 1
    failures: list[PybuildError] = []
    built: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [(service, pool.submit(one, item)) for service, item in zip(services, prepared)]
        for service, future in futures:
            try:
                built.append((service.name, future.result()))
            except PybuildError as exc:
                exc.message = f"baking service {service.name!r}: {exc.message}"
                failures.append(exc)
    # the summary comes last, after every service's own output
    for name, image_id in built:
        print(f"{name} {image_id.removeprefix('sha256:')}", flush=True)
    if failures:
        raise failures[0]
    return 0

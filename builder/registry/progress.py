"""Per-blob transfer progress: rich bars on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = ["TransferProgress", "make_progress"]


class TransferProgress(Protocol):
    def add(self, digest: str, total: int) -> Callable[[int], None]:
        """Start a bar for ``digest``; returns the callback that advances it."""

    def done(self, digest: str) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def add(self, digest: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def done(self, digest: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Bars:
    def __init__(self, verb: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._verb = verb
        self._bars = RichProgress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), console=Console(stderr=True), transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._bars.start()

    def add(self, digest: str, total: int) -> Callable[[int], None]:
        task = self._bars.add_task(f"{self._verb} blob {digest[7:19]}", total=total or None)
        self._tasks[digest] = task
        return lambda n: self._bars.advance(task, n)

    def done(self, digest: str) -> None:
        task = self._tasks.get(digest)
        if task is not None:
            self._bars.update(task, completed=self._bars.tasks[task].total or 0)

    def close(self) -> None:
        self._bars.stop()


def make_progress(verb: str, *, quiet: bool) -> TransferProgress:
    """Bars when stderr is a terminal and not ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return _Silent()
    return _Bars(verb)

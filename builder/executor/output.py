"""Progress lines in Buildah's shape: ``[1/2] STEP 1/4: FROM ...``, ``COMMIT``, ``-->``.

Progress goes to ``out`` (stdout); warnings to ``err``. With ``quiet`` only
warnings are written; the command prints the image ID itself. Lines a fully
cached rebuild would print again are also handed to ``builder.replay``, and a
step that ran contributes the ``--> Using cache`` line its rebuild will print.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO

from builder import replay


@dataclass
class Progress:
    quiet: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stage_count: int = 1

    def _line(self, text: str, replayable: bool = True) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)
            if replayable:
                replay.line(1, text)

    def step(self, stage_position: int, step: int, steps: int, text: str) -> None:
        prefix = f"[{stage_position}/{self.stage_count}] " if self.stage_count > 1 else ""
        self._line(f"{prefix}STEP {step}/{steps}: {text}")

    def commit(self, name: str) -> None:
        self._line(f"COMMIT {name}".rstrip())

    def image(self, image_id: str) -> None:
        self._line(f"--> {image_id.removeprefix('sha256:')[:12]}")

    def tagged(self, name: str) -> None:
        self._line(f"Successfully tagged {name}")

    def info(self, text: str) -> None:
        """A line about this build only (a pull, a push): not replayed."""
        self._line(text, replayable=False)

    def using_cache(self, key: str, hit: bool) -> None:
        """A step's cache line: printed on a hit, replayed either way."""
        text = f"--> Using cache {key}"
        if hit:
            self._line(text)
        elif not self.quiet:
            replay.line(1, text)

    def warn(self, text: str) -> None:
        self._err(f"WARN[0000] {text}")

    def warning(self, text: str) -> None:
        """Buildah's bracketed form, used for unconsumed build args."""
        self._err(f"[Warning] {text}")

    def _err(self, text: str) -> None:
        print(text, file=self.err, flush=True)
        replay.line(2, text)


class LineWriter:
    """Writes whole lines only, so lines of stages running at once do not mix."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.local = threading.local()

    def write(self, text: str) -> int:
        buffer = getattr(self.local, "buffer", "") + text
        head, sep, tail = buffer.rpartition("\n")
        self.local.buffer = tail
        if sep:
            with self.lock:
                self.out.write(head + sep)
                self.out.flush()
        return len(text)

    def flush(self) -> None:
        pass

"""SSH agents for ``RUN --mount=type=ssh``: what ``bud --ssh`` forwards, and the socket a
step sees.

``--ssh`` takes Buildah's forms: ``default`` (the caller's ``$SSH_AUTH_SOCK``),
``ID=SOCKET`` (an agent socket) and ``ID=KEY[,KEY...]`` (private key files, which
pybuild loads into an ``ssh-agent`` of its own for the build). A step never sees
the agent's own socket: each ssh mount gets a socket of its own (``StepSocket``)
whose owner and mode the mount decides, and which passes every connection through
to the agent while the step runs.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StepError, UsageError

__all__ = ["SshAgents", "SshSource", "StepSocket", "parse_ssh", "step_sockets"]

DEFAULT_ID = "default"


@dataclass(frozen=True)
class SshSource:
    """What ``--ssh ID=...`` names: an agent socket, or key files to serve."""

    id: str
    socket: Path | None = None
    keys: tuple[Path, ...] = ()


def parse_ssh(values: list[str], environ: Mapping[str, str]) -> dict[str, SshSource]:
    """``--ssh`` values as sources by id; UsageError for a missing socket or key."""
    out: dict[str, SshSource] = {}
    for raw in values:
        ident, sep, rest = raw.partition("=")
        if not ident:
            raise UsageError(f"parsing --ssh {raw!r}: expected default or ID[=SOCKET|KEY,...]")
        if not sep:
            agent = environ.get("SSH_AUTH_SOCK")
            if not agent:
                raise UsageError(f"parsing --ssh {raw!r}: $SSH_AUTH_SOCK not set")
            paths = [Path(agent)]
        else:
            paths = [Path(p) for p in rest.split(",") if p]
        for path in paths:
            if not path.exists():
                raise UsageError(f"parsing --ssh {raw!r}: {path}: no such file or socket")
        if len(paths) == 1 and paths[0].is_socket():
            out[ident] = SshSource(ident, socket=paths[0])
        elif all(p.is_file() for p in paths):
            out[ident] = SshSource(ident, keys=tuple(paths))
        else:
            raise UsageError(f"parsing --ssh {raw!r}: expected one agent socket or key files")
    return out


class SshAgents:
    """The agents of one build: forwarded sockets as they are, key files loaded into an
    ``ssh-agent`` started on first use and stopped by ``close``."""

    def __init__(self, sources: Mapping[str, SshSource]) -> None:
        self.sources = dict(sources)
        self._agents: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self._lock = threading.Lock()

    def socket(self, ident: str) -> Path | None:
        """The agent socket for ``ident``; None when ``--ssh`` did not name it."""
        source = self.sources.get(ident)
        if source is None:
            return None
        if source.socket is not None:
            return source.socket
        with self._lock:
            if ident not in self._agents:
                self._agents[ident] = self._serve(source)
            return self._agents[ident][1]

    def _serve(self, source: SshSource) -> tuple[subprocess.Popen[bytes], Path]:
        agent_bin = shutil.which("ssh-agent")
        add_bin = shutil.which("ssh-add")
        if agent_bin is None or add_bin is None:
            raise UsageError(f"serving --ssh {source.id}: ssh-agent and ssh-add are needed "
                             "(Debian package openssh-client)")
        directory = Path(tempfile.mkdtemp(prefix="pybuild-ssh-"))  # short: sun_path is 108
        path = directory / "agent.sock"
        agent = subprocess.Popen([agent_bin, "-D", "-a", os.fspath(path)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if path.exists() or agent.poll() is not None:
                break
            threading.Event().wait(0.01)
        added = subprocess.run([add_bin, *map(os.fspath, source.keys)],
                               env={**os.environ, "SSH_AUTH_SOCK": os.fspath(path)},
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if added.returncode != 0:
            agent.kill()
            agent.wait()
            raise UsageError(f"serving --ssh {source.id}: ssh-add: "
                             f"{added.stderr.strip() or 'failed'}")
        return agent, path

    def close(self) -> None:
        for agent, path in self._agents.values():
            agent.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(timeout=5)
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            shutil.rmtree(path.parent, ignore_errors=True)
        self._agents.clear()


class StepSocket:
    """A socket at ``path`` (owned ``uid``:``gid``, ``mode``) passing each connection
    through to the agent at ``upstream``, until ``close``."""

    def __init__(self, upstream: Path, path: Path, uid: int, gid: int, mode: int) -> None:
        self.upstream = upstream
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.fspath(path))
        # without a user namespace of its own, an unprivileged pybuild is the step's root
        if (uid, gid) != (0, 0) or os.geteuid() == 0:
            try:
                os.chown(path, uid, gid)
            except PermissionError as exc:
                self.listener.close()
                raise StepError(f"mounting the ssh agent for {uid}:{gid}: {exc.strerror}") \
                    from exc
        os.chmod(path, mode)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="ssh-forward", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        selector.register(self._stop_r, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while True:
                for key, _ in selector.select():
                    if key.fileobj == self._stop_r:
                        return
                    if key.fileobj is self.listener:
                        self._accept(selector, peers)
                    else:
                        self._pump(key.fileobj, selector, peers)  # type: ignore[arg-type]
        finally:
            for conn in list(peers):
                conn.close()
            selector.close()

    def _accept(self, selector: selectors.BaseSelector,
                peers: dict[socket.socket, socket.socket]) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            agent.connect(os.fspath(self.upstream))
        except OSError:
            client.close()
            agent.close()
            return
        for one, other in ((client, agent), (agent, client)):
            one.setblocking(True)
            peers[one] = other
            selector.register(one, selectors.EVENT_READ, None)

    @staticmethod
    def _pump(conn: socket.socket, selector: selectors.BaseSelector,
              peers: dict[socket.socket, socket.socket]) -> None:
        other = peers.get(conn)
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if data and other is not None:
            with contextlib.suppress(OSError):
                other.sendall(data)
                return
        for end in (conn, other):
            if end is not None and end in peers:
                selector.unregister(end)
                del peers[end]
                end.close()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._stop_r)
        os.close(self._stop_w)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def step_sockets(requests: list[tuple[Path, int, int, int]]) -> Iterator[list[Path]]:
    """Sockets for one step's ssh mounts: (agent socket, uid, gid, mode) each."""
    if not requests:
        yield []
        return
    directory = Path(tempfile.mkdtemp(prefix="pybuild-ssh-"))  # short: sun_path is 108
    opened: list[StepSocket] = []
    try:
        for index, (upstream, uid, gid, mode) in enumerate(requests):
            opened.append(StepSocket(upstream, directory / f"{index}.sock", uid, gid, mode))
        yield [s.path for s in opened]
    finally:
        for step_socket in opened:
            step_socket.close()
        shutil.rmtree(directory, ignore_errors=True)

"""Servers on 127.0.0.1 for context tests: static files over HTTP, git over smart HTTP
(``git http-backend``) and over the git protocol (``git daemon``), and a local
repository with a tag, a branch and a subdirectory."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

GIT = shutil.which("git")


@dataclass
class Repo:
    """A bare repository under ``root``: ``v1`` (tag) and ``main`` (branch), each with
    ``app/Containerfile`` and ``app/version``; ``commits`` maps ref -> commit."""

    root: Path
    name: str
    commits: dict[str, str]

    @property
    def path(self) -> Path:
        return self.root / self.name


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(root: Path, containerfile: str = "FROM scratch\nCOPY version /version\n"
              ) -> Repo:
    if GIT is None:
        pytest.skip("git is not installed")
    work = root / "work"
    (work / "app").mkdir(parents=True)
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "app" / "Containerfile").write_text(containerfile)
    (work / "app" / "version").write_text("one\n")
    (work / "README").write_text("top\n")
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    commits = {"v1": _git("rev-parse", "HEAD", cwd=work)}
    (work / "app" / "version").write_text("two\n")
    _git("commit", "-qam", "two", cwd=work)
    commits["main"] = _git("rev-parse", "HEAD", cwd=work)
    bare = root / "srv"
    bare.mkdir()
    _git("clone", "-q", "--bare", str(work), str(bare / "repo.git"), cwd=root)
    return Repo(bare, "repo.git", commits)


def advance(repo: Repo, text: str) -> str:
    """A new commit on main changing app/version; returns it."""
    work = repo.root.parent / "work"
    (work / "app" / "version").write_text(text)
    _git("commit", "-qam", text.strip(), cwd=work)
    _git("push", "-q", str(repo.path), "main", cwd=work)
    repo.commits["main"] = _git("rev-parse", "HEAD", cwd=work)
    return repo.commits["main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory it serves)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(_Quiet):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[tuple[str, Repo]]:
    """``git http-backend`` (smart HTTP) behind a small CGI bridge: (base URL, repo)."""
    repo = make_repo(tmp_path / "git-http")
    backend = ["git", "http-backend"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.cgi()

        def do_POST(self) -> None:
            self.cgi()

        def cgi(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {"GIT_PROJECT_ROOT": str(repo.root), "GIT_HTTP_EXPORT_ALL": "1",
                   "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(length), "REMOTE_ADDR": "127.0.0.1",
                   "PATH": os.environ["PATH"]}
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            out = subprocess.run(backend, input=body, env=env, capture_output=True).stdout
            head, _, content = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", repo
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[str, Repo]]:
    """``git daemon`` on 127.0.0.1: (git://127.0.0.1:PORT, repo)."""
    repo = make_repo(tmp_path / "git-daemon")
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repo.root}",
         "--listen=127.0.0.1", f"--port={port}", str(repo.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("git daemon did not start")
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}", repo
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fake_ssh(directory: Path) -> dict[str, str]:
    """Environment for git's ssh transport (``git@host:/path``) without an ssh server:
    GIT_SSH_COMMAND runs the remote command locally (git's "simple" ssh variant passes
    only the host and the command)."""
    script = directory / "fake-ssh"
    script.write_text('#!/bin/sh\nshift  # the host\nexec sh -c "$*"\n')
    script.chmod(0o755)
    return {"GIT_SSH_COMMAND": str(script), "GIT_SSH_VARIANT": "simple"}

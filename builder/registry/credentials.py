"""Registry credentials in ``auth.json`` (the containers / Docker ``auths`` format).

Written to ``--authfile``, else ``$REGISTRY_AUTH_FILE``, else
``$XDG_RUNTIME_DIR/containers/auth.json`` (``/run/containers/<uid>/auth.json``
without it). Read from that file, then ``~/.config/containers/auth.json`` and
``~/.docker/config.json``. An explicit ``--authfile`` is the only file read.
Keys are ``host`` or ``host/namespace/repo``; the most specific key wins.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.errors import AuthenticationError, UsageError

__all__ = [
    "Credentials",
    "auth_file_path",
    "find_credentials",
    "parse_creds",
    "read_auth_file",
    "remove_credentials",
    "store_credentials",
]

@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(username={self.username!r})"


def parse_creds(text: str) -> Credentials:
    """``user[:password]`` from ``--creds``."""
    user, _, password = text.partition(":")
    if not user:
        raise UsageError("parsing --creds: the user name is empty")
    return Credentials(user, password)


def auth_file_path(explicit: Path | None = None) -> Path:
    """The file ``login`` writes to."""
    if explicit is not None:
        return explicit
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    from builder import userns

    return Path("/run/containers") / str(userns.caller_ids()[0]) / "auth.json"


def _read_paths(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    docker = Path(os.environ.get("DOCKER_CONFIG") or home / ".docker")
    return [auth_file_path(), config / "containers" / "auth.json", docker / "config.json"]


def read_auth_file(path: Path) -> dict[str, object]:
    """The parsed file, or an empty one when it does not exist."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"auths": {}}
    except (OSError, ValueError) as exc:
        raise AuthenticationError(f"reading auth file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise AuthenticationError(f"reading auth file {path}: not a JSON object")
    if not isinstance(data.get("auths"), dict):
        data["auths"] = {}
    return data


def _normalise_key(key: str) -> str:
    key = key.removeprefix("https://").removeprefix("http://").rstrip("/")
    if key.endswith(("/v1", "/v2")):
        key = key[:-3]
    return "docker.io" if key in ("index.docker.io", "registry-1.docker.io") else key


def _decode(entry: object) -> Credentials | None:
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return Credentials(user, password) if user else None


def find_credentials(
    registry: str, repository: str | None = None, *, authfile: Path | None = None
) -> Credentials | None:
    """Stored credentials for ``registry`` (and ``repository``), most specific key first."""
    wanted = [registry]
    if repository:
        parts = repository.split("/")
        wanted = [f"{registry}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)] + wanted
    for path in _read_paths(authfile):
        auths = read_auth_file(path)["auths"]
        assert isinstance(auths, dict)
        by_key = {_normalise_key(k): v for k, v in auths.items()}
        for key in wanted:
            creds = _decode(by_key.get(key))
            if creds:
                return creds
    return None


def _write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def store_credentials(key: str, creds: Credentials, *, authfile: Path | None = None) -> Path:
    """Save ``creds`` under ``key`` (mode 0600); returns the file written."""
    path = auth_file_path(authfile)
    data = read_auth_file(path)
    auths = data["auths"]
    assert isinstance(auths, dict)
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[key] = {"auth": token}
    _write(path, data)
    return path


def remove_credentials(key: str | None, *, authfile: Path | None = None) -> bool:
    """Forget ``key`` (None: every key); whether anything was removed."""
    path = auth_file_path(authfile)
    data = read_auth_file(path)
    auths = data["auths"]
    assert isinstance(auths, dict)
    if key is None:
        removed = bool(auths)
        data["auths"] = {}
    else:
        matches = [k for k in auths if _normalise_key(k) == _normalise_key(key)]
        for k in matches:
            del auths[k]
        removed = bool(matches)
    if removed:
        _write(path, data)
    return removed

"""Registry authentication: anonymous, then whatever the 401 challenge asks for.

``Authenticator.flow`` is a generator in the style of httpx's auth flows: it
yields headers for an attempt and receives the response; on a 401 it reads
``WWW-Authenticate`` (``Basic realm=...`` or ``Bearer realm,service,scope``),
fetches a token or switches to Basic, and yields once more. Tokens are cached
per scope and dropped when the registry refuses them.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import TYPE_CHECKING, Generator

from builder.errors import AuthenticationError, RegistryError
from builder.registry.credentials import Credentials

if TYPE_CHECKING:
    import requests

    from builder.registry.http import TLSConfig, Transport

__all__ = ["Authenticator", "parse_challenge"]

_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="r",service="s"`` -> ("bearer", {"realm": "r", "service": "s"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        quoted, bare = m.group(2), m.group(3)
        params[m.group(1).lower()] = quoted.replace('\\"', '"') if quoted is not None else bare
    return scheme.lower(), params


class Authenticator:
    """Credentials and cached tokens for one registry; shared by threads."""

    def __init__(
        self, registry: str, credentials: Credentials | None, transport: Transport, tls: TLSConfig
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._transport = transport
        self._tls = tls
        self._basic = False
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def headers(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials:
            return {"Authorization": _basic(self.credentials)}
        return {}

    def flow(self, scope: str) -> Generator[dict[str, str], requests.Response, None]:
        """Yield headers; receive each response; stop once it is not a fixable 401."""
        sent = self.headers(scope)
        response = yield sent
        if response.status_code != 401:
            return
        header = response.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if not self.credentials or (self._basic and "Authorization" in sent):
                return
            self._basic = True
        elif scheme == "bearer" and "realm" in params:
            wanted = " ".join(dict.fromkeys([*scope.split(), *params.get("scope", "").split()]))
            token = self._fetch_token(params, wanted)
            with self._lock:
                self._tokens[scope] = token
        else:
            return
        yield self.headers(scope)

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        query: list[tuple[str, str]] = []
        if "service" in params:
            query.append(("service", params["service"]))
        for item in scope.split(" "):
            if item:
                query.append(("scope", item))
        headers = {"Authorization": _basic(self.credentials)} if self.credentials else {}
        response = self._transport.send(
            "GET", params["realm"], tls=self._tls, params=query, headers=headers
        )
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"authenticating to {self.registry}: "
                + ("invalid username or password" if self.credentials else "token refused")
                + f" (HTTP {response.status_code})",
                registry=self.registry,
                status=response.status_code,
            )
        if response.status_code != 200:
            raise RegistryError(
                f"authenticating to {self.registry}: token server answered HTTP "
                f"{response.status_code}",
                registry=self.registry,
                status=response.status_code,
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"authenticating to {self.registry}: the token server sent no token",
                registry=self.registry,
            )
        return token


def _basic(creds: Credentials | None) -> str:
    assert creds is not None
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()

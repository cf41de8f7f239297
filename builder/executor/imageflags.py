"""What ``bud``'s image flags change in the committed config, in Buildah's order.

Buildah applies these when it commits (``StageExecutor.commit``), after every step
ran, so RUN steps never see them and they are no part of any cache key:

* ``--os-version`` sets ``os.version``; ``--os-feature F`` adds F to
  ``os.features`` and ``--os-feature F-`` removes it.
* ``--env K=V`` sets K; ``$NAME`` and ``${NAME}`` in V expand from the image's
  environment (a name the image does not set expands to the name itself, with a
  warning, as Buildah's ``os.Expand`` callback does); ``--env K`` takes K from
  pybuild's own environment. ``--unsetenv K`` then removes K.
* Labels: the Containerfile's, then the identity label and ``--label`` (the
  command puts both in ``labels``), then ``--unsetlabel K`` removes K.
* ``--omit-history`` drops the history, the base image's included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

from builder import replay
from builder.image.spec import ImageConfig

__all__ = ["apply_image_flags", "expand_env_value"]

_REFERENCE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9*#$@!?-]))")


def expand_env_value(value: str, env: dict[str, str],
                     warn: Callable[[str], None] | None = None) -> str:
    """Go's ``os.Expand`` with Buildah's callback: a name missing from ``env`` gives
    the name itself."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if name in env:
            return env[name]
        if warn is not None:
            warn(f"error expanding variable {name!r}: no value set in image")
        return name

    return _REFERENCE.sub(replace, value)


def apply_image_flags(
    config: ImageConfig, *, labels: dict[str, str], env: Sequence[str] = (),
    unset_env: Sequence[str] = (), unset_labels: Sequence[str] = (),
    os_version: str | None = None, os_features: Sequence[str] = (),
    omit_history: bool = False, warn: Callable[[str], None] | None = None,
) -> None:
    """Change ``config`` in place as the flags say (see the module docstring)."""
    if os_version:
        config.os_version = os_version
    for feature in os_features:
        features = list(config.os_features or [])
        if feature.endswith("-"):
            features = [f for f in features if f != feature[:-1]]
        elif feature not in features:
            features.append(feature)
        config.os_features = features or None
    body = config.config
    current = dict(item.partition("=")[::2] for item in body.env or [])
    for spec in env:
        name, has_value, value = spec.partition("=")
        if has_value:
            value = expand_env_value(value, current, warn)
        else:
            replay.watch_env(name)
            value = os.environ.get(name, "")
        current.pop(name, None)  # Buildah's SetEnv: the variable moves to the end
        current[name] = value
    for name in unset_env:
        current.pop(name, None)
    if env or unset_env:
        body.env = [f"{k}={v}" for k, v in current.items()] or None
    if labels or unset_labels:
        merged = {**(body.labels or {}), **labels}
        for name in unset_labels:
            merged.pop(name, None)
        body.labels = merged or None
    if omit_history:
        config.history = []

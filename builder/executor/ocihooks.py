"""OCI hooks (``--hooks-dir``) for steps run by an OCI runtime (``--isolation oci``).

Hook definitions are the JSON files of each directory, in the containers format
(oci-hooks(5), schema 1.0.0): ``hook`` (the runtime spec's path, args, env,
timeout), ``when`` (``always``, ``commands`` and ``annotations`` as regular
expressions, ``hasBindMounts``; every condition given must match) and
``stages``. A file in a later directory masks one of the same name in an earlier
one; hooks are injected in the order of their lower-cased file names. A missing
directory is no error, as with Buildah. Chroot isolation runs no hooks (Buildah's
does not either).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from builder.errors import UsageError

__all__ = ["STAGES", "hooks_for"]

STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
          "poststop")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"reading OCI hook {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != "1.0.0":
        raise UsageError(f"reading OCI hook {path}: only schema version 1.0.0 is supported")
    hook, when, stages = data.get("hook"), data.get("when"), data.get("stages")
    if not isinstance(hook, dict) or not isinstance(hook.get("path"), str):
        raise UsageError(f"reading OCI hook {path}: hook.path is required")
    if not isinstance(when, dict) or not when:
        raise UsageError(f"reading OCI hook {path}: when needs at least one condition")
    if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
        raise UsageError(f"reading OCI hook {path}: stages must be chosen from "
                         f"{', '.join(STAGES)}")
    return data


def _matches(when: dict[str, Any], argv0: str, annotations: dict[str, str],
             bind_mounts: bool) -> bool:
    checks = []
    if "always" in when:
        checks.append(bool(when["always"]))
    if "commands" in when:
        checks.append(any(re.search(p, argv0) for p in when["commands"]))
    if "annotations" in when:
        checks.append(all(any(re.search(k, key) and re.search(v, value)
                              for key, value in annotations.items())
                          for k, v in when["annotations"].items()))
    if "hasBindMounts" in when:
        checks.append(bool(when["hasBindMounts"]) and bind_mounts)
    return bool(checks) and all(checks)


def hooks_for(directories: tuple[str, ...], argv0: str, annotations: dict[str, str],
              bind_mounts: bool) -> dict[str, list[dict[str, Any]]]:
    """The runtime spec's ``hooks`` for a step."""
    named: dict[str, Path] = {}
    for directory in directories:
        try:
            entries = sorted(Path(directory).iterdir())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(f"reading --hooks-dir {directory}: {exc.strerror}") from exc
        for entry in entries:
            if entry.suffix == ".json" and entry.is_file():
                named[entry.name] = entry
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(named, key=str.lower):
        data = _read(named[name])
        if not _matches(data["when"], argv0, annotations, bind_mounts):
            continue
        hook = {k: v for k, v in data["hook"].items() if k in ("path", "args", "env", "timeout")}
        for stage in data["stages"]:
            out.setdefault(stage, []).append(hook)
    return out

"""Push and pull a 200 MB image: pybuild against ``skopeo copy``, same local registry server.

    python bench/registry_bench.py [--size-mb 200] [--layers 4]

Every measurement gets a fresh ``docker-registry`` on loopback (so no tool finds
blobs already there) and skopeo's blob-info cache is cleared first. Each tool
runs once, as a subprocess; pybuild pushes from and pulls into its store,
skopeo from and into an OCI layout holding the same blobs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "registry"))

from registry_fixtures import (  # noqa: E402
    _start_registry,
    _stop,
    layer_tar,
    make_oci_dir,
    seed_store,
)

SKOPEO_CACHES = (
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return elapsed


def clear_skopeo_cache() -> None:
    for path in SKOPEO_CACHES:
        path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    pybuild = [sys.executable, "-m", "builder"]
    skopeo = ["skopeo", "--insecure-policy"]
    try:
        per_layer = args.size_mb * (1 << 20) // args.layers
        layers = [layer_tar({f"data{i}": os.urandom(per_layer)}, level=1)
                  for i in range(args.layers)]
        size = sum(len(layer) for layer in layers) / (1 << 20)
        seed_store(work / "store", "localhost/bench:1", layers)
        make_oci_dir(work / "oci", "bench", [("amd64", layers)])
        results: dict[str, float] = {}
        for tool in ("pybuild", "skopeo"):
            reg = _start_registry(work / f"registry-{tool}", None, None)
            try:
                dest = f"{reg.host}/bench/app:1"
                clear_skopeo_cache()
                if tool == "pybuild":
                    results["push pybuild"] = timed([
                        *pybuild, "--root", str(work / "store"), "push", "-q",
                        "localhost/bench:1", dest])
                    results["pull pybuild"] = timed([
                        *pybuild, "--root", str(work / "pulled"), "pull", "-q", dest])
                else:
                    results["push skopeo"] = timed([
                        *skopeo, "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{work / 'oci'}:bench", f"docker://{dest}"])
                    clear_skopeo_cache()
                    results["pull skopeo"] = timed([
                        *skopeo, "copy", "-q", "--src-tls-verify=false",
                        f"docker://{dest}", f"oci:{work / 'skopeo-pulled'}:bench"])
            finally:
                _stop(reg)
        print(f"image: {size:.0f} MB in {args.layers} gzip layers")
        for op in ("push", "pull"):
            ours, theirs = results[f"{op} pybuild"], results[f"{op} skopeo"]
            print(f"{op}: pybuild {ours:.2f} s, skopeo {theirs:.2f} s, "
                  f"ratio pybuild/skopeo {ours / theirs:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The main job: set up; make a Debian bookworm base with mmdebstrap; build the first
# Containerfile container courses teach (Containerfile.examples/debian-python3: RUN
# apt-get install python3, with the default flags, so RUN reaches the Debian archive
# through its own network namespace); inspect the image and run it in pybuild's sandbox.
# Then the same for the busybox example, and an export to an OCI layout. Uses the
# default store (/var/lib/pybuild as root) unless PYBUILD_ROOT or --root says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# the Debian base: mmdebstrap, kept in /var/tmp between runs (and shared with the tests)
base=$(PYTHON="$PWD/.venv/bin/python" bash bench/make-debian-base.sh \
       "${PYBUILD_DEBIAN_DIR:-/var/tmp/pybuild-debian-base}")
step pybuild bud --build-arg BASE="$base" -t python3:1.0 Containerfile.examples/debian-python3
step pybuild inspect --format '{{.OCIv1.architecture}} {{.OCIv1.os}} Cmd={{json .Config.Cmd}} layers={{len .Manifest.layers}}' python3:1.0
step pybuild run python3:1.0 python3 -c 'import platform, socket; print(f"hello from Python {platform.python_version()} in {socket.gethostname()}")'

sh Containerfile.examples/busybox/prepare.sh
step pybuild bud -t busybox-demo:latest Containerfile.examples/busybox
step pybuild images
step pybuild run busybox-demo:latest /bin/sh -c 'echo "hello from $(hostname), pid $$"; busybox | head -1; ls /sys/class/net'
step pybuild push busybox-demo:latest "oci:${TMPDIR:-/tmp}/busybox-demo-layout:latest"
if command -v skopeo >/dev/null; then
  step skopeo inspect "oci:${TMPDIR:-/tmp}/busybox-demo-layout:latest"
fi

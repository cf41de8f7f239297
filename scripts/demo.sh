#!/usr/bin/env bash
# The main job: set up, build the busybox example with pybuild, inspect the
# image, and run it in pybuild's own sandbox. Uses the default store
# (/var/lib/pybuild as root) unless PYBUILD_ROOT or --root says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

sh Containerfile.examples/busybox/prepare.sh
step pybuild bud -t busybox-demo:latest Containerfile.examples/busybox
step pybuild images
step pybuild inspect --format '{{.OCIv1.architecture}} {{.OCIv1.os}} Cmd={{json .Config.Cmd}} layers={{len .Manifest.layers}}' busybox-demo:latest
step pybuild run busybox-demo:latest /bin/sh -c 'echo "hello from $(hostname), pid $$"; busybox | head -1; ls /'
step pybuild push busybox-demo:latest "oci:${TMPDIR:-/tmp}/busybox-demo-layout:latest"
if command -v skopeo >/dev/null; then
  step skopeo inspect "oci:${TMPDIR:-/tmp}/busybox-demo-layout:latest"
fi

#!/usr/bin/env bash
# Build the Debian base image of the debian-run benchmark case with pybuild itself.
#
#   bench/make-debian-base.sh OUT_DIR
#
# Bootstraps a bookworm minbase root file system with mmdebstrap (installed with
# apt when missing), then builds FROM scratch + ADD rootfs.tar / + CMD ["bash"]
# and exports it as the OCI layout OUT_DIR/debian-oci, tag bookworm, which the
# case takes as --build-arg BASE=oci:OUT_DIR/debian-oci:bookworm. Prints that
# reference. A layout that already holds the tag is kept, and so is the root
# file system tarball OUT_DIR/rootfs.tar (pass FORCE=1 to redo both).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: make-debian-base.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LAYOUT=$OUT/debian-oci
if [ "${FORCE:-0}" != 1 ] && grep -qs '"bookworm"' "$LAYOUT/index.json"; then
  echo "oci:$LAYOUT:bookworm"
  exit 0
fi
if ! command -v mmdebstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >&2
fi
if [ "${FORCE:-0}" = 1 ] || [ ! -s "$OUT/rootfs.tar" ]; then
  mmdebstrap --quiet --variant=minbase --format=tar bookworm "$OUT/rootfs.tar.tmp" >&2
  mv "$OUT/rootfs.tar.tmp" "$OUT/rootfs.tar"
fi
WORK=$(mktemp -d "$OUT/.debian-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/ctx"
ln "$OUT/rootfs.tar" "$WORK/ctx/rootfs.tar" 2>/dev/null || cp "$OUT/rootfs.tar" "$WORK/ctx/"
cat > "$WORK/ctx/Containerfile" <<'CF'
FROM scratch
ADD rootfs.tar /
CMD ["bash"]
CF
PYBUILD=("${PYTHON:-python3}" -m builder --root "$WORK/store")
(cd "$HERE/.." && "${PYBUILD[@]}" bud -q -t localhost/debian:bookworm "$WORK/ctx" >&2 \
  && rm -rf "$LAYOUT" \
  && "${PYBUILD[@]}" push localhost/debian:bookworm "oci:$LAYOUT:bookworm" >&2)
echo "oci:$LAYOUT:bookworm"

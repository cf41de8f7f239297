#!/bin/sh
# Copy a static busybox into this directory so the build context contains it.
# Debian and Ubuntu ship one in the busybox-static package.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
source=${BUSYBOX:-/bin/busybox}
if [ ! -f "$source" ]; then
    echo "prepare.sh: $source not found; install busybox-static or set BUSYBOX" >&2
    exit 1
fi
cp "$source" "$here/busybox"
chmod 0755 "$here/busybox"
echo "copied $source into $here"

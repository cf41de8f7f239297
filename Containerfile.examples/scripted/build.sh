#!/bin/sh
# Build the same image as ./Containerfile, one working-container command at a time.
# usage: build.sh [IMAGE-NAME] [BASE-IMAGE]    (env PYBUILD: the pybuild command to use)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pybuild=${PYBUILD:-pybuild}
image=${1:-scripted:latest}
base=${2:-localhost/busybox:latest}

ctr=$($pybuild from "$base")
trap '$pybuild rm "$ctr" >/dev/null 2>&1 || true' EXIT

$pybuild config --env APP_HOME=/app --env GREETING=hello --workingdir /app "$ctr"
$pybuild copy "$ctr" "$here/app.sh" /app/app.sh
$pybuild copy --chmod 0600 "$ctr" "$here/config.txt" /etc/app/config.txt
$pybuild run "$ctr" -- sh -c \
    'mkdir -p /var/lib/app && echo "$GREETING" > /var/lib/app/greeting && chmod 755 /app/app.sh'
$pybuild config \
    --label org.opencontainers.image.title=scripted --label maintainer=ops \
    --port 8080 --volume /var/lib/app --user nobody --stopsignal SIGINT \
    --entrypoint '["/app/app.sh"]' --cmd '["--serve"]' \
    "$ctr"
$pybuild commit "$ctr" "$image"

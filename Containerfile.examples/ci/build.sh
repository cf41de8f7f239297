#!/bin/sh
# A CI job any runner can execute: build with a cache shared through a registry,
# push, then extract what the job keeps. Runner after runner, steps hit the cache
# pushed by earlier jobs, and RUN --mount=type=cache directories (pip, apt, go
# caches) arrive warm.
#
#   REGISTRY=HOST:PORT/team CI_COMMIT_SHA=abc123 [ARTIFACTS=DIR] sh build.sh [CONTEXT]
#
# With ARTIFACTS set, the Containerfile's "artifacts" stage (test reports, binaries)
# is written to that directory with --output; its steps come from the cache the
# first build filled, so this costs only the copy.
set -eu
: "${REGISTRY:?set REGISTRY to host[:port]/namespace}"
context=${1:-.}
tag=${CI_COMMIT_SHA:-latest}
cache="$REGISTRY/app-cache"

if [ -n "${REGISTRY_PASSWORD:-}" ]; then
  printf '%s' "$REGISTRY_PASSWORD" |
    pybuild login -u "$REGISTRY_USER" --password-stdin "${REGISTRY%%/*}"
fi
pybuild bud \
  --cache-from "$cache" --cache-to "$cache" --cache-mounts --cache-ttl 168h \
  -t "$REGISTRY/app:$tag" "$context"
pybuild push "$REGISTRY/app:$tag"
if [ -n "${ARTIFACTS:-}" ]; then
  pybuild bud -q --target artifacts --output "type=local,dest=$ARTIFACTS" "$context"
fi

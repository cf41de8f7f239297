#!/usr/bin/env bash
# Set up (Debian packages, .venv) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/syntax -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"

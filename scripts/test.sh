#!/usr/bin/env bash
# Set up (Debian packages, .venv) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/syntax -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Most tests start pybuild as a subprocess: compile the package once instead of at every
# start (which an environment with PYTHONDONTWRITEBYTECODE set would make it do).
unset PYTHONDONTWRITEBYTECODE
.venv/bin/python -m compileall -q builder > /dev/null
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"

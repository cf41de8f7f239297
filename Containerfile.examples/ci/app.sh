#!/bin/sh
# The example's "application": greets, and checks itself with --selftest.
if [ "$1" = --selftest ]; then
  [ "$(sh "$0" tester)" = "hello, tester" ] && echo "selftest: 1 passed" && exit 0
  echo "selftest: failed" && exit 1
fi
echo "hello, ${1:-world}"

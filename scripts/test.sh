#!/usr/bin/env bash
# The full test suite: sets MIS up if needed, then runs pytest against a PostGIS that the
# test session starts itself. Extra arguments go to pytest (e.g. -k vocab).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"

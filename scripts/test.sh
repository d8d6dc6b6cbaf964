#!/usr/bin/env bash
# The full test suite: sets MIS up if needed, checks lint (ruff) and types (mypy) over the
# whole checkout, then runs pytest against a PostGIS that the test session starts itself.
# Extra arguments go to pytest (e.g. -k vocab); the lint and type gate always runs first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

# the gate: any finding fails the run before a test starts ([tool.ruff], [tool.mypy] in pyproject.toml)
if ! .venv/bin/ruff check; then
  echo "error: ruff found lint issues (listed above); '.venv/bin/ruff check --fix' mends the ones marked [*]" >&2
  exit 1
fi
if ! .venv/bin/mypy; then
  echo "error: mypy found type errors in src/mis (listed above)" >&2
  exit 1
fi

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"

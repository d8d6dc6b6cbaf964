#!/usr/bin/env bash
# The main job, end to end, on the built-in default: sets MIS up if needed, then runs
# `mis demo` (embedded PostGIS, migrations, vocabularies, a sample deposit). Extra
# arguments go to `mis demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/mis demo "$@"

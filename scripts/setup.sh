#!/usr/bin/env bash
# Idempotent set-up for MIS on Debian: the Debian packages it needs, then a virtualenv
# (.venv) with MIS and its Python dependencies. Safe to run any number of times; it only
# does work when something is missing or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The one list (scripts/debian-packages.txt) that the tests and check-fresh-machine.sh read too.
mapfile -t DEBIAN_PACKAGES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' scripts/debian-packages.txt)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: MIS needs the Debian packages: ${missing[*]} (scripts/debian-packages.txt)," >&2
    echo "       and this system has no apt-get. Install PostgreSQL >= 13 with PostGIS >= 3" >&2
    echo "       by other means, or point MIS at an existing PostGIS with MIS_DATABASE_URL." >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "==> installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "error: MIS needs Python 3.11 (found: $("$PYTHON" --version 2>&1))." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating the virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.mis-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing MIS and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned exactly: this takes the CPU wheel, not GBs of CUDA packages.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

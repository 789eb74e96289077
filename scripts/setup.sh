#!/usr/bin/env bash
# Sets up everything flamehouse needs in ./.venv (idempotent). Used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${FLAMEHOUSE_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

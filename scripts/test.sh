#!/usr/bin/env bash
# README's second command: set up, lint, type-check and run the whole test suite.
# Exits non-zero when anything fails, including pytest finding no tests (exit 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the web UI's browser tests drive Debian's Chromium (Playwright's own browser download is not used)
if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium for the browser tests"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"

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
# the export tests read pprof files with Debian's `go tool pprof` and load exports in speedscope's own app
if ! command -v go >/dev/null 2>&1; then
    echo "== installing golang-go for the pprof export tests"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go
fi
if [ ! -f .cache/npm-speedscope/node_modules/speedscope/dist/release/index.html ]; then
    if ! command -v npm >/dev/null 2>&1; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
    fi
    echo "== installing speedscope (npm) for the export tests"
    npm install --silent --no-audit --no-fund --prefix .cache/npm-speedscope speedscope@1.25.0
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

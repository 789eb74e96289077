#!/usr/bin/env bash
# README's first command: set up, then run `flamehouse demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/flamehouse demo "$@"

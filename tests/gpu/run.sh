#!/usr/bin/env bash
# Runs the real-GPU checks on a machine with an NVIDIA GPU: installs NVML bindings and
# a CUDA build of torch into .venv, then runs the tests marked `gpu`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q --disable-pip-version-check nvidia-ml-py "torch>=2.4"
exec .venv/bin/python -m pytest -m gpu tests/gpu -v -s "$@"

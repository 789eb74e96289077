"""Real-GPU check: NVML metrics beside py-spy stacks on a CUDA training job.

Skipped wherever NVML finds no device. Run on an NVIDIA machine with
``bash tests/gpu/run.sh`` (installs nvidia-ml-py and a CUDA build of torch into
.venv, then runs ``pytest -m gpu tests/gpu``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.e2e.conftest import FLAMEHOUSE, Server

pytestmark = pytest.mark.gpu


def _gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0


if _gpu_count() == 0:
    pytest.skip("no NVIDIA GPU visible to NVML (pynvml missing or no device)", allow_module_level=True)
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch has no CUDA here", allow_module_level=True)


def test_training_on_gpu_is_attributed(server: Server, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    started = int(time.time()) - 1
    began = time.monotonic()
    done = subprocess.run(
        [*FLAMEHOUSE, "run", "--collector", server.grpc, "--service", "gpu-mlp", "--window", "2", "--gpu", "nvml",
         "--stats-file", str(stats), "--", sys.executable, str(Path(__file__).parent / "train_mlp.py"), "300"],
        capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-3000:]
    counters = json.loads(stats.read_text())
    assert counters["gpu_device_samples"] > 0

    status, gpu = server.get("/api/v1/gpu", selector='{service="gpu-mlp"}', **{"from": str(started)})
    assert status == 200, gpu
    peak = max((u or 0) for d in gpu["devices"] for u in d["series"]["sm_util"])
    assert peak > 0, gpu["devices"]
    # the training process is attributed to its GPU by NVML's per-process data
    _, pids = server.get("/api/v1/labels/pid/values", selector='{service="gpu-mlp"}', **{"from": str(started)})
    attributed = {p["pid"] for p in gpu["processes"]}
    assert attributed & {int(p) for p in pids["values"]}, (attributed, pids)

    status, idle = server.get("/api/v1/top", selector='{service="gpu-mlp"}', gpu_state="idle", **{"from": str(started)})
    totals = {f["function"]: f["total"] for f in idle["functions"]}
    assert totals.get("stall_loading", 0) > totals.get("train_step", 0), totals
    record = {
        "peak_sm_util": peak,
        "elapsed_s": round(elapsed, 1),
        "samples": counters["samples_taken"],
        "gpu_device_samples": counters["gpu_device_samples"],
        "idle_totals": dict(sorted(totals.items(), key=lambda kv: -kv[1])[:5]),
    }
    print("GPU-FIGURES", json.dumps(record))
    out = Path(os.environ.get("OUT", tmp_path)) / "gpu-figures.json"
    out.write_text(json.dumps(record, indent=2))

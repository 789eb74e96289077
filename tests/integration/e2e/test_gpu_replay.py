"""GPU-wait attribution end to end: `flamehouse run --gpu replay:FILE` → gpu_state=idle|busy profiles."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SCRIPTS
from tests.integration.e2e.conftest import FLAMEHOUSE, Server

pytestmark = pytest.mark.integration


def test_idle_profile_is_loading_and_busy_profile_is_training(server: Server, tmp_path: Path) -> None:
    replay = tmp_path / "gpu.jsonl"
    stats = tmp_path / "stats.json"
    started = int(time.time()) - 1
    done = subprocess.run(
        [*FLAMEHOUSE, "run", "--collector", server.grpc, "--service", "phases", "--window", "1",
         "--gpu", f"replay:{replay}", "--stats-file", str(stats),
         "--", sys.executable, str(SCRIPTS / "gpu_phases.py"), str(replay), "8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counters = json.loads(stats.read_text())
    assert counters["gpu_device_samples"] >= 6

    def totals(state: str) -> dict[str, int]:
        status, body = server.get(
            "/api/v1/top", selector='{service="phases"}', gpu_state=state, **{"from": str(started)}
        )
        assert status == 200, body
        return {f["function"]: f["total"] for f in body["functions"]}

    # the work itself runs in spin_until; which phase called it decides the GPU state
    idle, busy = totals("idle"), totals("busy")
    assert idle.get("load_batch", 0) > 4 * idle.get("train_step", 0), idle
    assert busy.get("train_step", 0) > 4 * busy.get("load_batch", 0), busy

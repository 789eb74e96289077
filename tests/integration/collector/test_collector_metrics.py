"""`flamehouse collector` alone (no HTTP API) still exposes its counters for Prometheus."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.e2e.conftest import FLAMEHOUSE, free_port

pytestmark = pytest.mark.integration


def test_collector_metrics_listen(tmp_path: Path) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    with (tmp_path / "collector.log").open("wb") as log:
        proc = subprocess.Popen(
            [*FLAMEHOUSE, "collector", "--data-dir", str(tmp_path), "--grpc-listen", f"127.0.0.1:{grpc_port}",
             "--metrics-listen", f"127.0.0.1:{metrics_port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "collector.log").read_text()
                assert time.monotonic() < deadline, "collector metrics never came up"
                time.sleep(0.2)
        assert "flamehouse_collector_batches_received_total 0.0" in body
        proc.terminate()
        assert proc.wait(timeout=30) == 0, (tmp_path / "collector.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

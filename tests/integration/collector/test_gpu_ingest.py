"""GPU metrics from the agent's encoder through validation into gpu_devices / gpu_processes."""

from __future__ import annotations

import math
import time

import pytest

from flamehouse.agent.batch import AgentIdentity, encode_gpu
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample
from flamehouse.collector import InvalidBatch
from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.store import Store

pytestmark = pytest.mark.integration

NOW = int(time.time())
AGENT = AgentIdentity("agent-1", "gpu-host-1")
NAN = math.nan


def device(t: int, index: int, util: float, power: float = 300.0) -> GpuDeviceSample:
    return GpuDeviceSample(t, index, f"GPU-{index}", "NVIDIA H200", util, 20.0, 2**30, 141 * 2**30, power, 50.0, 1980.0)


def test_gpu_rows_are_stored_with_nan_as_null_and_deduplicated(store: Store) -> None:
    counters = IngestCounters()
    ingestor = Ingestor(store, counters=counters)
    devices = [device(NOW - 2, 0, 95.0), device(NOW - 2, 1, 3.0, power=NAN), device(NOW - 1, 0, 90.0)]
    processes = [
        GpuProcessSample(NOW - 2, 4242, 0, "GPU-0", 88.0, 2**29),
        GpuProcessSample(NOW - 1, 4242, 0, "GPU-0", NAN, 2**29),
    ]
    batch = encode_gpu(devices, processes, AGENT, batch_id="gpu-b1")
    ingestor.push(batch)
    Ingestor(store).push(batch)  # a retry after a collector restart: ClickHouse drops it
    rows = store.query(
        "SELECT toUnixTimestamp(ts), host, gpu_index, gpu_uuid, gpu_name, sm_util, power_w, mem_total "
        "FROM flamehouse.gpu_devices ORDER BY ts, gpu_index"
    )
    assert rows == [
        (NOW - 2, "gpu-host-1", 0, "GPU-0", "NVIDIA H200", 95.0, 300.0, 141 * 2**30),
        (NOW - 2, "gpu-host-1", 1, "GPU-1", "NVIDIA H200", 3.0, None, 141 * 2**30),
        (NOW - 1, "gpu-host-1", 0, "GPU-0", "NVIDIA H200", 90.0, 300.0, 141 * 2**30),
    ]
    procs = store.query("SELECT pid, gpu_index, sm_util, mem_used FROM flamehouse.gpu_processes ORDER BY ts")
    assert procs == [(4242, 0, 88.0, 2**29), (4242, 0, None, 2**29)]
    assert counters.snapshot()["gpu_rows_stored"] == 5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (device(NOW, 0, 140.0), r"gpu_devices.sm_util\[1\]=140.0 must be a percentage"),
        (device(NOW - 40 * 86_400, 0, 10.0), r"gpu_devices.time\[1\]=.* is outside"),
        (device(NOW, 5000, 10.0), r"gpu_devices.index\[1\]=5000 is not a plausible device index"),
    ],
)
def test_bad_gpu_rows_are_rejected_and_store_nothing(store: Store, bad: GpuDeviceSample, message: str) -> None:
    batch = encode_gpu([device(NOW, 0, 50.0), bad], [], AGENT)
    with pytest.raises(InvalidBatch, match=message):
        Ingestor(store).push(batch)
    assert store.query("SELECT count() FROM flamehouse.gpu_devices") == [(0,)]

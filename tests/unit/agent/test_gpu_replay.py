"""ReplaySource: JSON lines and nvidia-smi CSV, followed like ``tail -F``."""

from __future__ import annotations

import json
import logging
import math
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flamehouse.agent.gpu import open_gpu_source
from flamehouse.agent.gpu_replay import ReplaySource
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MIB = 1 << 20
T0 = 1_795_953_601


def device(second: int = T0, index: int = 0, sm_util: float = 87.5, **extra: Any) -> str:
    return json.dumps({"time": second + 0.25, "index": index, "sm_util": sm_util, **extra}) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def utils(source: ReplaySource) -> list[float]:
    return [d.sm_util for d in source.poll(0).devices]


def test_json_device_and_process_rows(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    full: dict[str, Any] = {"uuid": "GPU-aaaa", "name": "NVIDIA H200", "mem_util": 40, "mem_used_bytes": 30000 * MIB}
    full |= {"mem_total_bytes": 143771 * MIB, "power_watts": 350.12, "temperature_c": 55, "sm_clock_mhz": 1980}
    path.write_text(
        device(**full)
        + device(index=1, sm_util=0)
        + json.dumps({"time": T0 + 0.5, "pid": 1234, "index": 0, "sm_util": 55, "mem_used_bytes": 2 * MIB})
        + "\n"
        + json.dumps({"time": T0 + 0.5, "pid": 99, "index": 1})
        + "\n"
    )
    source = ReplaySource(path, host_gpus={1: "GPU-host-1"})

    reading = source.poll(T0 + 1.0)

    first, second = reading.devices
    assert first == GpuDeviceSample(
        T0, 0, "GPU-aaaa", "NVIDIA H200", 87.5, 40.0, 30000 * MIB, 143771 * MIB, 350.12, 55.0, 1980.0
    )
    assert (second.index, second.uuid, second.name, second.sm_util, second.mem_used_bytes) == (
        1,
        "GPU-host-1",
        "",
        0.0,
        0,
    )
    assert all(math.isnan(v) for v in (second.mem_util, second.power_watts, second.temperature_c, second.sm_clock_mhz))
    proc, bare = reading.processes
    assert proc == GpuProcessSample(T0, 1234, 0, "GPU-aaaa", 55.0, 2 * MIB)  # uuid from the device row
    assert (bare.pid, bare.uuid, bare.mem_used_bytes) == (99, "GPU-host-1", 0)
    assert math.isnan(bare.sm_util)
    assert source.counters.snapshot() == {
        "polls": 1,
        "device_samples": 2,
        "process_samples": 2,
        "errors": 0,
        "bad_lines": 0,
        "devices_lost": 0,
    }
    assert source.poll(T0 + 2.0).devices == ()
    source.close()


def test_follows_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(device(sm_util=1))
    source = ReplaySource(path)
    assert utils(source) == [1]
    append(path, device(T0 + 1, sm_util=2) + device(T0 + 2, sm_util=3))
    reading = source.poll(0)
    assert [(d.time, d.sm_util) for d in reading.devices] == [(T0 + 1, 2), (T0 + 2, 3)]
    assert utils(source) == []
    source.close()


def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    line = device(sm_util=42)
    path.write_text(line[:20])
    source = ReplaySource(path)
    assert utils(source) == []
    append(path, line[20:-1])
    assert utils(source) == []
    append(path, "\n")
    assert utils(source) == [42]
    assert source.counters.bad_lines == 0
    source.close()


def test_a_file_created_after_the_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "later.jsonl"
    source = ReplaySource(path)
    with caplog.at_level(logging.INFO, logger="flamehouse.agent.gpu_replay"):
        assert utils(source) == []
        assert utils(source) == []
    assert len([r for r in caplog.records if "waiting" in r.getMessage()]) == 1
    path.write_text(device(sm_util=7))
    assert utils(source) == [7]
    assert source.counters.errors == 0
    source.close()


def test_truncation_reads_the_file_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(device(sm_util=1) + device(sm_util=2) + device(sm_util=3))
    source = ReplaySource(path)
    assert utils(source) == [1, 2, 3]
    path.write_text(device(sm_util=9))  # opened with "w": truncated, then written
    assert utils(source) == [9]
    append(path, device(sm_util=10))
    assert utils(source) == [10]
    source.close()


def test_rotation_finishes_the_old_file_then_reads_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(device(sm_util=1))
    source = ReplaySource(path)
    assert utils(source) == [1]
    append(path, device(sm_util=2) + device(sm_util=3).rstrip("\n"))  # last line never gets its newline
    path.rename(tmp_path / "gpu.jsonl.1")
    assert utils(source) == [2]  # the new file does not exist yet: keep the old one
    path.write_text("timestamp, index, utilization.gpu [%]\n2026/11/29 12:00:01.123, 0, 77 %\n")
    assert utils(source) == [3, 77]  # the old file's last line, then the new file in its own format
    source.close()


def test_bad_lines_are_counted_and_logged_with_their_line_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(
        device(sm_util=1)  # line 1
        + "not json at all\n"  # line 2
        + "\n"  # line 3: blank lines are skipped silently
        + json.dumps({"time": T0, "index": 0})
        + "\n"  # line 4: sm_util missing
        + "[1, 2]\n"  # line 5: not an object
        + json.dumps({"time": T0, "index": -1, "sm_util": 5})
        + "\n"  # line 6
        + json.dumps({"time": T0, "pid": 0, "index": 0})
        + "\n"  # line 7
        + json.dumps({"time": "noon", "index": 0, "sm_util": 5})
        + "\n"  # line 8
        + device(sm_util=2)  # line 9
    )
    source = ReplaySource(path)
    with caplog.at_level(logging.WARNING, logger="flamehouse.agent.gpu_replay"):
        assert utils(source) == [1, 2]
    assert source.counters.bad_lines == 6
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5  # the first five, then every 100th
    assert [m.split(" line=")[1].split()[0] for m in messages] == ["2", "4", "5", "6", "7"]
    assert '"sm_util" is required' in messages[1]
    source.close()


def test_bad_line_logging_is_rate_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(device() + "garbage\n" * 250)
    source = ReplaySource(path)
    with caplog.at_level(logging.WARNING, logger="flamehouse.agent.gpu_replay"):
        source.poll(0)
    assert source.counters.bad_lines == 250
    lines = [r.getMessage().split(" line=")[1].split()[0] for r in caplog.records]
    assert lines == ["2", "3", "4", "5", "6", "101", "201"]
    source.close()


def local(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Unix second of a zone-less time read as this machine's local time, as nvidia-smi writes it."""
    return int(datetime(year, month, day, hour, minute, second).timestamp())


def test_nvidia_smi_csv_capture(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "nvidia-smi.csv"
    shutil.copy(FIXTURES / "nvidia-smi.csv", path)
    source = open_gpu_source(f"replay:{path}")
    assert isinstance(source, ReplaySource)

    with caplog.at_level(logging.WARNING, logger="flamehouse.agent.gpu_replay"):
        reading = source.poll(0)

    assert len(reading.devices) == 10  # 2 GPUs x 5 seconds; the repeated header is not a row
    assert reading.processes == ()
    assert reading.devices[0] == GpuDeviceSample(
        time=local(2026, 11, 29, 12, 0, 1),
        index=0,
        uuid="GPU-5c4e2a8e-9f1b-4c3d-8e7a-1b2c3d4e5f60",
        name="NVIDIA H200",
        sm_util=87.0,
        mem_util=40.0,
        mem_used_bytes=30000 * MIB,
        mem_total_bytes=143771 * MIB,
        power_watts=350.12,
        temperature_c=55.0,
        sm_clock_mhz=1980.0,
    )
    by_second = {(d.time - local(2026, 11, 29, 12, 0, 0), d.index): d for d in reading.devices}
    assert sorted(by_second) == [(s, i) for s in range(1, 6) for i in (0, 1)]
    assert math.isnan(by_second[2, 1].power_watts)  # [N/A]
    assert by_second[2, 1].sm_clock_mhz == 345.0
    assert by_second[4, 1].sm_util == 100.0
    assert source.counters.bad_lines == 1
    (record,) = caplog.records
    assert "line=10 " in record.getMessage()
    assert "Failed to initialize NVML" in record.getMessage()
    source.close()


def test_csv_columns_by_name_any_order_without_units(tmp_path: Path) -> None:
    path = tmp_path / "smi.csv"
    path.write_text(
        "timestamp, clocks.sm [MHz], index, memory.used [MiB], power.draw.instant [W], utilization.gpu [%]\n"
        "2026/11/29 12:00:01, 1410, 3, 1024, [Not Supported], 33\n"
    )
    source = ReplaySource(path)
    (row,) = source.poll(0).devices
    assert (row.time, row.index, row.sm_clock_mhz, row.mem_used_bytes, row.sm_util) == (
        local(2026, 11, 29, 12, 0, 1),
        3,
        1410.0,
        1024 * MIB,
        33.0,
    )
    assert math.isnan(row.power_watts) and math.isnan(row.mem_util)
    assert (row.uuid, row.name, row.mem_total_bytes) == ("", "", 0)
    source.close()


def test_csv_rows_that_do_not_fit_their_header_are_bad(tmp_path: Path) -> None:
    path = tmp_path / "smi.csv"
    path.write_text(
        "timestamp, index, utilization.gpu [%]\n"
        "2026/11/29 12:00:01.000, 0, 5 %\n"
        "2026/11/29 12:00:01.000, 0\n"  # too few fields
        "29.11.2026 12:00:01, 0, 5 %\n"  # not nvidia-smi's timestamp
        "2026/11/29 12:00:01.000, zero, 5 %\n"
        "2026/11/29 12:00:01.000, 0, lots\n"
        "timestamp, utilization.gpu [%]\n"  # a header without index makes the rows after it bad
        "2026/11/29 12:00:02.000, 6 %\n"
    )
    source = ReplaySource(path)
    assert utils(source) == [5]
    assert source.counters.bad_lines == 6
    source.close()


def test_an_unrecognised_first_line_is_bad_and_detection_continues(tmp_path: Path) -> None:
    path = tmp_path / "gpu.log"
    path.write_text("# recorded on gpu-07\n" + device(sm_util=4))
    source = ReplaySource(path)
    assert utils(source) == [4]
    assert source.counters.bad_lines == 1
    source.close()


def test_a_closed_source_returns_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gpu.jsonl"
    path.write_text(device())
    source = ReplaySource(path)
    source.close()
    assert utils(source) == []
    assert source.name == f"replay:{path}"

"""NvmlSource and open_gpu_source, against a test double for NVML.

This machine has no NVIDIA GPU, so :class:`FakeNvml` stands in for the ``pynvml``
module (nvidia-ml-py): the only fake the project allows, for hardware it lacks.
The real module is exercised by ``tests/gpu`` on a machine with a GPU.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from flamehouse.agent import AgentError
from flamehouse.agent.gpu import GpuReading, NvmlSource, open_gpu_source
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample

GIB = 1 << 30


@dataclass
class FakeDevice:
    """One GPU as FakeNvml reports it; tests change its fields between polls."""

    uuid: str
    name: str = "NVIDIA H200"
    util: tuple[int, int] = (87, 40)  # (gpu, memory) percent
    memory: tuple[int, int] = (30 * GIB, 141 * GIB)  # (used, total) bytes
    power_mw: int = 350_120
    temperature: int = 55
    sm_clock: int = 1980
    #: Every per-process utilisation sample NVML holds: (pid, timeStamp µs, smUtil).
    util_samples: list[tuple[int, int, int]] = field(default_factory=list)
    #: Compute processes: (pid, usedGpuMemory or None).
    running: list[tuple[int, int | None]] = field(default_factory=list)
    #: NVML function name → exception it raises on this device from now on.
    failures: dict[str, BaseException] = field(default_factory=dict)


class FakeNvml:
    """Test double for the ``pynvml`` module: no NVIDIA GPU (hence no NVML) on this machine.

    Exposes the part of the nvidia-ml-py API NvmlSource uses, with its names and
    semantics: exception classes as attributes; ``nvmlDeviceGetProcessUtilization``
    returns the samples newer than the timestamp passed and raises NVMLError_NotFound
    when there are none; ``usedGpuMemory`` may be None. Records every call.
    """

    NVML_SUCCESS = 0
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_GpuIsLost(NVMLError):
        pass

    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    def __init__(self, *devices: FakeDevice, init_error: BaseException | None = None) -> None:
        self.devices = list(devices)
        self.init_error = init_error
        self.calls: list[tuple[str, int, tuple[Any, ...]]] = []
        self.shutdowns = 0

    def _call(self, name: str, handle: FakeDevice, *args: Any) -> FakeDevice:
        self.calls.append((name, self.devices.index(handle), args))
        if name in handle.failures:
            raise handle.failures[name]
        return handle

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        return self.devices[index]

    def nvmlDeviceGetUUID(self, handle: FakeDevice) -> str:
        return self._call("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: FakeDevice) -> bytes:
        return self._call("nvmlDeviceGetName", handle).name.encode()  # older releases return bytes

    def nvmlDeviceGetUtilizationRates(self, handle: FakeDevice) -> SimpleNamespace:
        gpu, memory = self._call("nvmlDeviceGetUtilizationRates", handle).util
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice) -> SimpleNamespace:
        used, total = self._call("nvmlDeviceGetMemoryInfo", handle).memory
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetPowerUsage(self, handle: FakeDevice) -> int:
        return self._call("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetTemperature(self, handle: FakeDevice, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._call("nvmlDeviceGetTemperature", handle, sensor).temperature

    def nvmlDeviceGetClockInfo(self, handle: FakeDevice, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return self._call("nvmlDeviceGetClockInfo", handle, clock).sm_clock

    def nvmlDeviceGetProcessUtilization(self, handle: FakeDevice, last_seen: int) -> list[SimpleNamespace]:
        device = self._call("nvmlDeviceGetProcessUtilization", handle, last_seen)
        newer = [s for s in device.util_samples if s[1] > last_seen]
        if not newer:
            raise self.NVMLError_NotFound()
        return [SimpleNamespace(pid=p, timeStamp=t, smUtil=u, memUtil=0, encUtil=0, decUtil=0) for p, t, u in newer]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeDevice) -> list[SimpleNamespace]:
        device = self._call("nvmlDeviceGetComputeRunningProcesses", handle)
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in device.running]

    def util_stamps(self, index: int) -> list[int]:
        """The last-seen timestamps passed to nvmlDeviceGetProcessUtilization for one device."""
        return [args[0] for name, i, args in self.calls if name == "nvmlDeviceGetProcessUtilization" and i == index]


def two_gpus() -> FakeNvml:
    return FakeNvml(
        FakeDevice("GPU-aaaa-0000", util_samples=[(100, 1_000, 90)], running=[(100, 20 * GIB)]),
        FakeDevice("GPU-bbbb-1111", util=(0, 0), memory=(1 * GIB, 141 * GIB), power_mw=75_000),
    )


def proc(reading: GpuReading, pid: int, index: int) -> GpuProcessSample:
    (row,) = [p for p in reading.processes if p.pid == pid and p.index == index]
    return row


def test_two_devices_are_sampled_with_their_identity_and_units() -> None:
    nvml = two_gpus()
    source = NvmlSource(nvml)
    assert source.devices == ((0, "GPU-aaaa-0000", "NVIDIA H200"), (1, "GPU-bbbb-1111", "NVIDIA H200"))

    reading = source.poll(1_795_953_601.7)

    assert reading.devices == (
        GpuDeviceSample(
            1_795_953_601, 0, "GPU-aaaa-0000", "NVIDIA H200", 87.0, 40.0, 30 * GIB, 141 * GIB, 350.12, 55.0, 1980.0
        ),
        GpuDeviceSample(
            1_795_953_601, 1, "GPU-bbbb-1111", "NVIDIA H200", 0.0, 0.0, 1 * GIB, 141 * GIB, 75.0, 55.0, 1980.0
        ),
    )
    assert reading.processes == (GpuProcessSample(1_795_953_601, 100, 0, "GPU-aaaa-0000", 90.0, 20 * GIB),)
    assert source.counters.snapshot() == {
        "polls": 1,
        "device_samples": 2,
        "process_samples": 1,
        "errors": 0,
        "bad_lines": 0,
        "devices_lost": 0,
    }
    source.close()
    source.close()
    assert nvml.shutdowns == 1


def test_process_utilisation_passes_the_newest_timestamp_seen_and_keeps_each_pids_newest() -> None:
    nvml = two_gpus()
    device = nvml.devices[0]
    device.util_samples = [(100, 1_000, 90), (100, 3_000, 70), (101, 2_000, 10)]
    device.running = [(100, 20 * GIB), (101, 2 * GIB)]
    source = NvmlSource(nvml)

    first = source.poll(10.0)
    assert proc(first, 100, 0).sm_util == 70.0  # newest of pid 100's samples
    assert proc(first, 101, 0).sm_util == 10.0

    device.util_samples.append((101, 4_500, 30))
    second = source.poll(11.0)
    assert nvml.util_stamps(0) == [0, 3_000]  # the max timeStamp of the first answer
    assert math.isnan(proc(second, 100, 0).sm_util)  # no new sample for 100: nan, memory still known
    assert proc(second, 100, 0).mem_used_bytes == 20 * GIB
    assert proc(second, 101, 0).sm_util == 30.0

    source.poll(12.0)
    assert nvml.util_stamps(0) == [0, 3_000, 4_500]


def test_not_found_means_no_new_samples_not_an_error() -> None:
    nvml = two_gpus()
    nvml.devices[0].util_samples = []  # NVML answers NOT_FOUND
    nvml.devices[0].running = [(100, 20 * GIB), (101, None)]  # None: NVML could not tell the memory
    source = NvmlSource(nvml)

    reading = source.poll(10.0)

    assert [(p.pid, p.mem_used_bytes) for p in reading.processes] == [(100, 20 * GIB), (101, 0)]
    assert all(math.isnan(p.sm_util) for p in reading.processes)
    assert nvml.util_stamps(0) == [0]
    assert source.counters.errors == 0
    assert source.counters.devices_lost == 0


def test_a_pid_with_utilisation_but_no_compute_context_still_gets_a_row() -> None:
    nvml = two_gpus()
    nvml.devices[1].util_samples = [(300, 5_000, 12)]
    reading = NvmlSource(nvml).poll(10.0)
    assert proc(reading, 300, 1) == GpuProcessSample(10, 300, 1, "GPU-bbbb-1111", 12.0, 0)


def test_processes_come_and_go() -> None:
    nvml = two_gpus()
    device = nvml.devices[0]
    source = NvmlSource(nvml)
    device.running = [(100, 20 * GIB), (101, 4 * GIB)]
    assert {p.pid for p in source.poll(10.0).processes} == {100, 101}

    device.running = [(101, 4 * GIB), (102, 8 * GIB)]
    device.util_samples.append((102, 2_000, 55))
    reading = source.poll(11.0)
    assert [(p.pid, p.mem_used_bytes) for p in reading.processes] == [(101, 4 * GIB), (102, 8 * GIB)]
    assert proc(reading, 102, 0).sm_util == 55.0

    device.running = []
    assert source.poll(12.0).processes == ()


def test_a_lost_gpu_stops_its_data_only_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    nvml = two_gpus()
    source = NvmlSource(nvml)
    assert len(source.poll(10.0).devices) == 2

    nvml.devices[1].failures["nvmlDeviceGetUtilizationRates"] = FakeNvml.NVMLError_GpuIsLost("GPU is lost")
    with caplog.at_level(logging.WARNING, logger="flamehouse.agent.gpu"):
        readings = [source.poll(t) for t in (11.0, 12.0, 13.0)]

    for reading in readings:
        assert [d.index for d in reading.devices] == [0]
        assert {p.index for p in reading.processes} <= {0}
    lost = [r for r in caplog.records if "index=1" in r.getMessage()]
    assert len(lost) == 1
    assert "NVMLError_GpuIsLost: GPU is lost" in lost[0].getMessage()
    assert source.counters.devices_lost == 1
    assert source.counters.errors == 1
    assert source.counters.device_samples == 2 + 3
    calls_on_1 = [name for name, index, _ in nvml.calls if index == 1]
    assert calls_on_1.count("nvmlDeviceGetUtilizationRates") == 2  # not asked again once lost


def test_any_other_error_on_a_device_also_ends_that_device() -> None:
    nvml = two_gpus()
    nvml.devices[0].failures["nvmlDeviceGetComputeRunningProcesses"] = FakeNvml.NVMLError_DriverNotLoaded("gone")
    source = NvmlSource(nvml)
    reading = source.poll(10.0)
    assert [d.index for d in reading.devices] == [1]
    assert reading.processes == ()  # device 0's partial data of that poll is dropped, not half-reported
    assert source.counters.devices_lost == 1


def test_an_unsupported_metric_is_nan_and_the_rest_still_reported() -> None:
    nvml = two_gpus()
    nvml.devices[0].failures["nvmlDeviceGetPowerUsage"] = FakeNvml.NVMLError_NotSupported()
    nvml.devices[0].failures["nvmlDeviceGetProcessUtilization"] = FakeNvml.NVMLError_NotSupported()
    source = NvmlSource(nvml)
    device = source.poll(10.0).devices[0]
    assert math.isnan(device.power_watts)
    assert (device.sm_util, device.temperature_c, device.sm_clock_mhz) == (87.0, 55.0, 1980.0)
    assert source.counters.errors == 0


def test_a_device_that_fails_at_start_is_lost_and_the_others_work(caplog: pytest.LogCaptureFixture) -> None:
    nvml = two_gpus()
    nvml.devices[0].failures["nvmlDeviceGetUUID"] = FakeNvml.NVMLError_GpuIsLost("GPU is lost")
    with caplog.at_level(logging.WARNING, logger="flamehouse.agent.gpu"):
        source = NvmlSource(nvml)
        reading = source.poll(10.0)
    assert [d.index for d in reading.devices] == [1]
    assert source.counters.devices_lost == 1
    assert len(caplog.records) == 1


def test_auto_without_a_working_nvml_is_no_source_with_one_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = FakeNvml(init_error=FakeNvml.NVMLError_DriverNotLoaded("Driver Not Loaded"))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with caplog.at_level(logging.DEBUG, logger="flamehouse.agent"):
        assert open_gpu_source("auto") is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "no GPU source: NVML failed to initialise: NVMLError_DriverNotLoaded: Driver Not Loaded")
    ]


def test_auto_with_no_device_is_no_source_and_nvml_shut_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with caplog.at_level(logging.INFO, logger="flamehouse.agent"):
        assert open_gpu_source("auto") is None
    assert [r.getMessage() for r in caplog.records] == ["no GPU source: NVML found no GPU on this host"]
    assert nvml.shutdowns == 1
    with pytest.raises(AgentError, match="NVML found no GPU"):
        open_gpu_source("nvml")


def test_auto_and_nvml_with_devices_give_an_nvml_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", two_gpus())
    for spec in ("auto", "nvml"):
        source = open_gpu_source(spec)
        assert isinstance(source, NvmlSource)
        assert len(source.poll(1.0).devices) == 2
        source.close()


def test_nvml_without_pynvml_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(AgentError, match=r"NVML not available: install nvidia-ml-py"):
        open_gpu_source("nvml")
    assert open_gpu_source("auto") is None


def test_nvml_with_a_failing_init_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(init_error=FakeNvml.NVMLError("Insufficient Permissions")))
    with pytest.raises(AgentError, match="NVML failed to initialise: NVMLError: Insufficient Permissions"):
        open_gpu_source("nvml")


def test_none_and_unknown_specs() -> None:
    assert open_gpu_source("none") is None
    with pytest.raises(AgentError, match=r"auto, nvml, none, replay:FILE"):
        open_gpu_source("cuda")
    with pytest.raises(AgentError, match="needs a file"):
        open_gpu_source("replay:")

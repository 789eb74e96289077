"""GPU sources: per-second device and per-process GPU samples beside the stacks.

A :class:`GpuSource` is polled about once a second by the agent's loop and
returns what is new since the last poll as a :class:`GpuReading`. Two sources
exist, chosen with ``--gpu`` (see :func:`open_gpu_source`):

- :class:`NvmlSource` reads a real NVIDIA GPU through NVML (nvidia-ml-py,
  imported as ``pynvml``; an optional dependency imported only when asked for).
- :class:`~flamehouse.agent.gpu_replay.ReplaySource` follows a file of recorded
  samples (JSON lines or ``nvidia-smi --format=csv`` output), for hosts without
  NVML and for metrics recorded elsewhere.

Errors are data: a device NVML loses (GPU fallen off the bus, driver gone, no
permission) stops yielding samples, is logged once and counted in
:class:`GpuCounters`; the other devices and stack sampling go on.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from flamehouse.agent import AgentError
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The ``pynvml`` module, or in tests an object with the same API surface.
Nvml = Any

#: The forms ``--gpu`` accepts, for error messages.
GPU_SPECS = "auto, nvml, none, replay:FILE"

_NVML_MISSING = "NVML not available: install nvidia-ml-py (`pip install nvidia-ml-py`, imported as pynvml)"


@dataclass(frozen=True, slots=True)
class GpuReading:
    """What a source produced since its previous poll."""

    devices: tuple[GpuDeviceSample, ...] = ()
    processes: tuple[GpuProcessSample, ...] = ()


@dataclass(slots=True)
class GpuCounters:
    """What a GPU source did; only ever grows. Exposed by every source as ``.counters``."""

    #: Calls to ``poll``.
    polls: int = 0
    #: Device samples returned.
    device_samples: int = 0
    #: Per-process samples returned.
    process_samples: int = 0
    #: Failures reading the source (an NVML call, an unreadable file).
    errors: int = 0
    #: Replay lines that could not be parsed (skipped).
    bad_lines: int = 0
    #: Devices that stopped yielding data after an NVML error.
    devices_lost: int = 0

    def snapshot(self) -> dict[str, int]:
        """The counters by name, e.g. for the agent's log line or metrics."""
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


class GpuSource(Protocol):
    """Where GPU samples come from; one instance per agent, polled from one thread."""

    #: Short description for logs, e.g. ``nvml`` or ``replay:/var/log/gpu.csv``.
    name: str
    counters: GpuCounters

    def poll(self, now: float) -> GpuReading:
        """Samples new since the previous poll; ``now`` is the current unix time."""
        ...

    def close(self) -> None:
        """Releases the source; later polls return nothing."""
        ...


def import_pynvml() -> Nvml:
    """The ``pynvml`` module, or :class:`AgentError` saying how to install it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise AgentError(_NVML_MISSING) from exc


def describe_error(exc: BaseException) -> str:
    """``ClassName: message`` for a log line; never raises (pynvml's ``__str__`` calls into NVML)."""
    try:
        text = str(exc)
    except Exception:  # the library may be gone: that is often why we are here
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class _NeverRaised(Exception):
    """Stands in for an NVML error class the module lacks, so ``except`` clauses stay valid."""


def _error_class(nvml: Nvml, name: str) -> type[BaseException]:
    found = getattr(nvml, name, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return _NeverRaised


def _text(value: object) -> str:
    """NVML strings: ``str`` in current nvidia-ml-py, ``bytes`` in older releases."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


@dataclass(slots=True)
class _Device:
    index: int
    handle: object
    uuid: str
    name: str
    #: Newest per-process utilisation timestamp seen (NVML's CPU clock, microseconds).
    last_seen_us: int = 0
    lost: bool = False


class NvmlSource:
    """Device and per-process samples from NVML; NVML reports host pids.

    Per poll and device: utilisation (SM and memory), memory used/total, power,
    temperature and SM clock; a metric the device does not support is ``nan``.
    Per process: SM utilisation from the newest ``nvmlDeviceGetProcessUtilization``
    sample since the previous poll (``nan`` when there is none) and memory from
    ``nvmlDeviceGetComputeRunningProcesses``; one row per (pid, device) that has either.
    Any other error on a device ends that device's data for good, logged once.
    """

    name = "nvml"

    def __init__(self, nvml: Nvml | None = None) -> None:
        """Initialises NVML and opens every device; :class:`AgentError` when NVML cannot start."""
        self._nvml = import_pynvml() if nvml is None else nvml
        self.counters = GpuCounters()
        self._closed = False
        self._not_found = _error_class(self._nvml, "NVMLError_NotFound")
        self._not_supported = _error_class(self._nvml, "NVMLError_NotSupported")
        self._nvml_error = _error_class(self._nvml, "NVMLError")
        try:
            self._nvml.nvmlInit()
        except Exception as exc:
            raise AgentError(f"NVML failed to initialise: {describe_error(exc)}") from exc
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except Exception as exc:
            self.close()
            raise AgentError(f"NVML could not count devices: {describe_error(exc)}") from exc
        self._devices = [self._open_device(i) for i in range(count)]

    @property
    def devices(self) -> tuple[tuple[int, str, str], ...]:
        """(index, UUID, name) of every device found at start, lost ones included."""
        return tuple((d.index, d.uuid, d.name) for d in self._devices)

    def _open_device(self, index: int) -> _Device:
        nvml = self._nvml
        device = _Device(index, None, "", "")
        try:
            device.handle = nvml.nvmlDeviceGetHandleByIndex(index)
            device.uuid = _text(nvml.nvmlDeviceGetUUID(device.handle))
            device.name = _text(nvml.nvmlDeviceGetName(device.handle))
        except Exception as exc:
            self._lose(device, exc)
        return device

    def poll(self, now: float) -> GpuReading:
        """One sample per healthy device and one per (pid, device) using it, stamped ``int(now)``."""
        self.counters.polls += 1
        if self._closed:
            return GpuReading()
        second = int(now)
        devices: list[GpuDeviceSample] = []
        processes: list[GpuProcessSample] = []
        for device in self._devices:
            if device.lost:
                continue
            try:
                sample = self._device_sample(device, second)
                rows = self._process_samples(device, second)
            except Exception as exc:
                self._lose(device, exc)
                continue
            devices.append(sample)
            processes.extend(rows)
        self.counters.device_samples += len(devices)
        self.counters.process_samples += len(processes)
        return GpuReading(tuple(devices), tuple(processes))

    def close(self) -> None:
        """Shuts NVML down (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            log.debug("nvmlShutdown failed: %s", describe_error(exc))

    def _optional(self, call: Callable[[], T]) -> T | None:
        """``call()``, or None when the device does not support that metric."""
        try:
            return call()
        except self._not_supported:
            return None

    def _device_sample(self, device: _Device, second: int) -> GpuDeviceSample:
        nvml, handle = self._nvml, device.handle
        util = self._optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        memory = self._optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        power_mw = self._optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        temperature = self._optional(lambda: nvml.nvmlDeviceGetTemperature(handle, sensor))
        clock_type = getattr(nvml, "NVML_CLOCK_SM", 1)
        clock = self._optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, clock_type))
        return GpuDeviceSample(
            time=second,
            index=device.index,
            uuid=device.uuid,
            name=device.name,
            sm_util=_float(util.gpu) if util is not None else math.nan,
            mem_util=_float(util.memory) if util is not None else math.nan,
            mem_used_bytes=int(memory.used) if memory is not None else 0,
            mem_total_bytes=int(memory.total) if memory is not None else 0,
            power_watts=_float(power_mw) / 1000.0,
            temperature_c=_float(temperature),
            sm_clock_mhz=_float(clock),
        )

    def _process_samples(self, device: _Device, second: int) -> list[GpuProcessSample]:
        util = self._process_util(device)
        memory = self._process_memory(device)
        return [
            GpuProcessSample(second, pid, device.index, device.uuid, util.get(pid, math.nan), memory.get(pid, 0))
            for pid in sorted(util.keys() | memory.keys())
        ]

    def _process_util(self, device: _Device) -> dict[int, float]:
        """SM utilisation of each pid's newest sample since the last one seen; advances the mark."""
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(device.handle, device.last_seen_us)
        except (self._not_found, self._not_supported):
            return {}  # NOT_FOUND: no sample newer than last_seen_us
        except self._nvml_error as exc:
            # Older nvidia-ml-py raises NVMLError(NVML_SUCCESS) when NVML has no sample at all.
            if getattr(exc, "value", None) == getattr(self._nvml, "NVML_SUCCESS", 0):
                return {}
            raise
        newest: dict[int, tuple[int, float]] = {}
        for sample in samples or ():
            pid, stamp = int(sample.pid), int(sample.timeStamp)
            if pid not in newest or stamp >= newest[pid][0]:
                newest[pid] = (stamp, _float(sample.smUtil))
            device.last_seen_us = max(device.last_seen_us, stamp)
        return {pid: util for pid, (_, util) in newest.items()}

    def _process_memory(self, device: _Device) -> dict[int, int]:
        """Bytes of device memory per pid with a compute context (None from NVML → 0)."""
        running = self._optional(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(device.handle))
        memory: dict[int, int] = {}
        for proc in running or ():
            used = proc.usedGpuMemory
            memory[int(proc.pid)] = memory.get(int(proc.pid), 0) + (int(used) if used is not None else 0)
        return memory

    def _lose(self, device: _Device, exc: BaseException) -> None:
        device.lost = True
        self.counters.devices_lost += 1
        self.counters.errors += 1
        log.warning("no GPU data from this device from now on: index=%d error=%s", device.index, describe_error(exc))


def _float(value: Any) -> float:
    """NVML numbers as float; None (not supported) becomes nan."""
    if value is None:
        return math.nan
    return float(value)


def open_gpu_source(spec: str) -> GpuSource | None:
    """The source ``--gpu SPEC`` names: ``auto``, ``nvml``, ``none`` or ``replay:FILE``.

    ``auto`` gives NVML when it initialises and finds a device, else None with one
    info line saying why; ``nvml`` raises :class:`AgentError` saying why instead.
    """
    if spec == "none":
        return None
    if spec in ("auto", "nvml"):
        return _open_nvml(required=spec == "nvml")
    if spec.startswith("replay:"):
        path = spec.removeprefix("replay:")
        if not path:
            raise AgentError("--gpu replay: needs a file, e.g. --gpu replay:/var/log/gpu.jsonl")
        # Imported here: gpu_replay builds on this module's types.
        from flamehouse.agent.gpu_replay import ReplaySource

        return ReplaySource(path)
    raise AgentError(f"--gpu {spec!r} is not understood; use one of: {GPU_SPECS}")


def _open_nvml(*, required: bool) -> NvmlSource | None:
    try:
        source = NvmlSource()
    except AgentError as exc:
        if required:
            raise
        log.info("no GPU source: %s", exc)
        return None
    if source.devices:
        log.info("GPU source nvml: %d device(s)", len(source.devices))
        return source
    source.close()
    if required:
        raise AgentError("NVML found no GPU on this host")
    log.info("no GPU source: NVML found no GPU on this host")
    return None

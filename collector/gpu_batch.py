"""Validation of the GPU part of a pushed batch (``gpu_devices``, ``gpu_processes``).

Pure, like :mod:`flamehouse.collector.validate`: returns plain column tuples or
raises :class:`~flamehouse.collector.InvalidBatch` saying what to fix. A float a
device does not report travels as NaN and is stored as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flamehouse.collector import InvalidBatch
from flamehouse.collector.validate import IngestLimits, check_index, check_lengths, first_bad
from flamehouse.proto import ingest_pb2

_DAY_S = 86_400
_PERCENT = ("sm_util", "mem_util")


@dataclass(frozen=True, slots=True)
class GpuDeviceColumns:
    """One element per (second, device); ``None`` where the device did not report."""

    time: tuple[int, ...]
    index: tuple[int, ...]
    uuid: tuple[str, ...]
    name: tuple[str, ...]
    sm_util: tuple[float | None, ...]
    mem_util: tuple[float | None, ...]
    mem_used: tuple[int, ...]
    mem_total: tuple[int, ...]
    power_w: tuple[float | None, ...]
    temperature_c: tuple[float | None, ...]
    sm_clock_mhz: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class GpuProcessColumns:
    """One element per (second, process, device)."""

    time: tuple[int, ...]
    pid: tuple[int, ...]
    index: tuple[int, ...]
    uuid: tuple[str, ...]
    sm_util: tuple[float | None, ...]
    mem_used: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GpuColumns:
    devices: GpuDeviceColumns
    processes: GpuProcessColumns

    @property
    def rows(self) -> int:
        return len(self.devices.time) + len(self.processes.time)


def decode_gpu(batch: ingest_pb2.Batch, limits: IngestLimits, *, now: float, ttl_days: int) -> GpuColumns:
    """Checks the GPU columns of ``batch``; raises InvalidBatch naming the field and index."""
    strings = len(batch.strings)
    bounds = (int(now) - ttl_days * _DAY_S, int(now) + limits.max_clock_skew_s)
    dev = batch.gpu_devices
    dcols = {f: list(getattr(dev, f)) for f in GpuDeviceWire}
    rows = check_lengths("gpu_devices", dcols)
    _check_common("gpu_devices", dcols, rows=rows, strings=strings, limits=limits, bounds=bounds)
    check_index(dcols["name"], strings, "gpu_devices.name", "strings")
    proc = batch.gpu_processes
    pcols = {f: list(getattr(proc, f)) for f in GpuProcessWire}
    prow = check_lengths("gpu_processes", pcols)
    _check_common("gpu_processes", pcols, rows=prow, strings=strings, limits=limits, bounds=bounds)
    text = list(batch.strings)
    devices = GpuDeviceColumns(
        time=tuple(dcols["time"]),
        index=tuple(dcols["index"]),
        uuid=tuple(text[i] for i in dcols["uuid"]),
        name=tuple(text[i] for i in dcols["name"]),
        sm_util=_nullable(dcols["sm_util"]),
        mem_util=_nullable(dcols["mem_util"]),
        mem_used=tuple(dcols["mem_used_bytes"]),
        mem_total=tuple(dcols["mem_total_bytes"]),
        power_w=_nullable(dcols["power_watts"]),
        temperature_c=_nullable(dcols["temperature_c"]),
        sm_clock_mhz=_nullable(dcols["sm_clock_mhz"]),
    )
    processes = GpuProcessColumns(
        time=tuple(pcols["time"]),
        pid=tuple(pcols["pid"]),
        index=tuple(pcols["index"]),
        uuid=tuple(text[i] for i in pcols["uuid"]),
        sm_util=_nullable(pcols["sm_util"]),
        mem_used=tuple(pcols["mem_used_bytes"]),
    )
    return GpuColumns(devices, processes)


GpuDeviceWire = (
    "time", "index", "uuid", "name", "sm_util", "mem_util", "mem_used_bytes", "mem_total_bytes",
    "power_watts", "temperature_c", "sm_clock_mhz",
)  # fmt: skip
GpuProcessWire = ("time", "pid", "index", "uuid", "sm_util", "mem_used_bytes")


def _check_common(
    message: str,
    cols: dict[str, list[int] | list[float]],
    *,
    rows: int,
    strings: int,
    limits: IngestLimits,
    bounds: tuple[int, int],
) -> None:
    if rows > limits.max_rows:
        raise InvalidBatch(f"{message} has {rows} rows, over the limit of {limits.max_rows}: send smaller batches")
    check_index(cols["uuid"], strings, f"{message}.uuid", "strings")  # type: ignore[arg-type]
    ts = cols["time"]
    lo, hi = bounds
    if ts and (min(ts) < lo or max(ts) > hi):
        i = first_bad(ts, lambda v: not lo <= v <= hi)
        raise InvalidBatch(f"{message}.time[{i}]={ts[i]} is outside [{lo}, {hi}]: send unix seconds")
    for name in _PERCENT:
        values = cols.get(name, [])
        if any(not math.isnan(v) and not 0 <= v <= 100 for v in values):
            i = first_bad(values, lambda v: not math.isnan(v) and not 0 <= v <= 100)
            raise InvalidBatch(f"{message}.{name}[{i}]={values[i]} must be a percentage 0..100 (or NaN if unknown)")
    index = cols["index"]
    if index and max(index) > 1023:
        i = first_bad(index, lambda v: v > 1023)
        raise InvalidBatch(f"{message}.index[{i}]={index[i]} is not a plausible device index (0..1023)")


def _nullable(values: Sequence[float]) -> tuple[float | None, ...]:
    return tuple(None if math.isnan(v) else v for v in values)

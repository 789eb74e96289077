"""GPU series for ``/api/v1/gpu`` and the samples/GPU timeline for ``/api/v1/timeline``.

Both bucket time into steps aligned to the range start: bucket ``k`` covers
``[start + k*step, start + (k+1)*step)`` and is reported by its start. Values
are averaged per bucket in ClickHouse (NULLs ignored; a bucket whose values
are all NULL reports ``None``), rounded to 3 decimals.

Which devices (documented choice): the selector picks sample rows; the GPUs
those rows' processes use (the GPU-set rule of :mod:`.gpu_state`: NVML's
per-process data, else ``cuda_visible_devices``, else every GPU of the host)
are the devices reported, and the processes listed are the selected ones.
A selector with no matchers (``""`` or ``{}``) reports every device and every
GPU process in the range, including hosts with no stack samples (device-only
replays). The timeline always follows the selected processes' GPU sets.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, TypedDict

from flamehouse.collector import QueryError
from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import gpu_set_ctes, procs_cte
from flamehouse.collector.store import Store
from flamehouse.collector.timespec import MAX_SPAN_SECONDS

log = logging.getLogger(__name__)

#: Points the default step aims to stay under.
DEFAULT_POINTS = 600
#: Most buckets one request may ask for.
MAX_POINTS = 11_000
#: Steps the default picks from (seconds); beyond a day, whole days.
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

DEVICE_METRICS = ("sm_util", "mem_util", "mem_used", "mem_total", "power_w", "temperature_c")
PROCESS_METRICS = ("sm_util", "mem_used")

_RANGE = "ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({t_to:UInt32})"
_BUCKET = "{t_from:UInt32} + intDiv(toUInt32(ts) - {t_from:UInt32}, {step:UInt32}) * {step:UInt32}"
_USED = "used AS (SELECT DISTINCT host, arrayJoin(gpus) AS gpu_index FROM gpu_sets)"

Series = dict[str, list[Any]]


class TimelineJSON(TypedDict):
    step: int
    time: list[int]
    samples: list[int]
    gpu_util: list[float | None]


@dataclass(frozen=True, slots=True)
class GpuResult:
    """Per-device and per-process series, each ``{"time": [...], metric: [...]}``."""

    step: int
    #: ``{"host", "index", "uuid", "name", "series"}`` per device, by host and index.
    devices: tuple[dict[str, Any], ...]
    #: ``{"host", "pid", "index", "series"}`` per process and device, by host, pid and index.
    processes: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "devices": list(self.devices), "processes": list(self.processes)}


@dataclass(frozen=True, slots=True)
class TimelineResult:
    """Dense per-step series: every bucket of the range, ``gpu_util`` ``None`` without GPU data."""

    step: int
    time: tuple[int, ...]
    samples: tuple[int, ...]
    gpu_util: tuple[float | None, ...]

    def to_json(self) -> TimelineJSON:
        return {
            "step": self.step,
            "time": list(self.time),
            "samples": list(self.samples),
            "gpu_util": list(self.gpu_util),
        }


def choose_step(start: int, end: int, step: int | None) -> int:
    """The bucket width in seconds: ``step`` checked, or the smallest nice step giving <= 600 points."""
    span = end - start
    if step is None:
        wanted = max(math.ceil(span / DEFAULT_POINTS), 1)
        return next((s for s in NICE_STEPS if s >= wanted), math.ceil(wanted / 86400) * 86400)
    if not 1 <= step <= MAX_SPAN_SECONDS:
        raise QueryError(f"step must be between 1 and {MAX_SPAN_SECONDS} seconds, got {step}")
    points = math.ceil(span / step)
    if points > MAX_POINTS:
        least = math.ceil(span / MAX_POINTS)
        raise QueryError(
            f"step {step}s makes {points} points over this range; at most {MAX_POINTS}: use step >= {least}"
        )
    return step


def _metric_sql(column: str) -> str:
    """The bucket mean of ``column``, NULL when it has no finite value."""
    return f"round(avgIf({column}, isFinite({column})), 3) AS {column}"


def _series_sql(table: str, keys: str, metrics: tuple[str, ...], where: str, *, named: bool) -> str:
    """One row per ``keys``: (with ``named``) uuid and name, then ``(bucket, metric...)`` tuples by bucket."""
    columns = ", ".join(_metric_sql(m) for m in metrics)
    names = ", any(gpu_uuid) AS uuid, any(gpu_name) AS name" if named else ""
    outer = ", any(uuid), any(name)" if named else ""
    return f"""
SELECT {keys}{outer}, arraySort(groupArray(({", ".join(("b", *metrics))}))) AS points
FROM (
    SELECT {keys}, {_BUCKET} AS b{names}, {columns}
    FROM {table} WHERE {_RANGE} AND {where}
    GROUP BY {keys}, b
)
GROUP BY {keys} ORDER BY {keys}
"""


def _columns(points: list[tuple[Any, ...]], metrics: tuple[str, ...]) -> Series:
    """``[(b, m1, m2, ...), ...]`` as ``{"time": [b...], "m1": [...], ...}``."""
    names = ("time", *metrics)
    if not points:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*points, strict=True), strict=True)}


def _scope(db: str, where: SampleFilter, step: int) -> tuple[str, str, str, dict[str, Any]]:
    """``(WITH prefix, device filter, process filter, params)`` for the devices a selector picks."""
    if where.everything:
        return "", "1", "1", {"t_from": where.start, "t_to": where.end, "step": step}
    return (
        f"WITH {procs_cte(db, where.sql)}, {gpu_set_ctes(db)}, {_USED}",
        "(host, gpu_index) IN (SELECT host, gpu_index FROM used)",
        "(host, pid) IN (SELECT host, pid FROM procs)",
        {**where.params, "step": step},
    )


def query_gpu(store: Store, where: SampleFilter, step: int | None) -> GpuResult:
    """Device and process GPU series for the selected processes (every device for an empty selector)."""
    step = choose_step(where.start, where.end, step)
    started = time.perf_counter()
    db = store.db
    prefix, device_where, process_where, params = _scope(db, where, step)
    device_sql = _series_sql(f"{db}.gpu_devices", "host, gpu_index", DEVICE_METRICS, device_where, named=True)
    devices = tuple(
        {"host": str(r[0]), "index": int(r[1]), "uuid": str(r[2]), "name": str(r[3]),
         "series": _columns(r[4], DEVICE_METRICS)}
        for r in store.query(prefix + device_sql, params)
    )  # fmt: skip
    keys = "host, pid, gpu_index"
    process_sql = _series_sql(f"{db}.gpu_processes", keys, PROCESS_METRICS, process_where, named=False)
    processes = tuple(
        {"host": str(r[0]), "pid": int(r[1]), "index": int(r[2]), "series": _columns(r[3], PROCESS_METRICS)}
        for r in store.query(prefix + process_sql, params)
    )
    elapsed_ms = (time.perf_counter() - started) * 1e3
    log.debug("query gpu devices=%d processes=%d elapsed_ms=%.1f", len(devices), len(processes), elapsed_ms)
    return GpuResult(step, devices, processes)


def timeline_sql(db: str, where: str) -> str:
    """Rows ``(what, bucket, value)``: ``what`` 0 = samples (sum), 1 = GPU util (mean)."""
    return f"""
WITH {procs_cte(db, where)}, {gpu_set_ctes(db)}, {_USED}
SELECT what, b, value FROM (
    SELECT 0 AS what, {_BUCKET} AS b, toFloat64(sum(count)) AS value
    FROM {db}.samples WHERE {where} GROUP BY b
    UNION ALL
    SELECT 1 AS what, {_BUCKET} AS b, avgIf(toFloat64(sm_util), isFinite(sm_util)) AS value
    FROM {db}.gpu_devices
    WHERE {_RANGE} AND (host, gpu_index) IN (SELECT host, gpu_index FROM used)
    GROUP BY b
)
"""


def query_timeline(store: Store, where: SampleFilter, step: int | None) -> TimelineResult:
    """Selected samples per step and the mean SM utilisation of the selected processes' GPUs."""
    step = choose_step(where.start, where.end, step)
    started = time.perf_counter()
    times = tuple(range(where.start, where.end, step))
    samples = [0] * len(times)
    gpu_util: list[float | None] = [None] * len(times)
    for what, bucket, value in store.query(timeline_sql(store.db, where.sql), {**where.params, "step": step}):
        slot = (int(bucket) - where.start) // step
        if what == 0:
            samples[slot] = int(value)
        elif value is not None and math.isfinite(value):
            gpu_util[slot] = round(float(value), 3)
    log.debug("query timeline points=%d elapsed_ms=%.1f", len(times), (time.perf_counter() - started) * 1e3)
    return TimelineResult(step, times, tuple(samples), tuple(gpu_util))

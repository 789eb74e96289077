"""Which GPUs a profiled process uses, and the state of those GPUs in each second.

The rules (issue 3, "Storage and queries"), applied per ``(host, pid)`` of the
selected samples and evaluated entirely in ClickHouse:

1. **GPU set**: the device indexes seen for that pid in ``gpu_processes``
   within the query range (NVML's own per-process data); else the devices
   named by the process's ``cuda_visible_devices`` label (comma-separated
   indexes, or GPU UUIDs matching ``gpu_devices.gpu_uuid`` on that host;
   entries that are neither are ignored; one value per process, as its
   environment does not change); else every GPU of the host seen in
   ``gpu_devices`` within the range. Indexes in ``CUDA_VISIBLE_DEVICES`` are
   taken as NVML indexes, which holds when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
   or when all GPUs of the host are alike; UUIDs are exact either way.
2. **State of a sample row** (``ts``, ``host``, ``pid``): ``none`` when no
   ``gpu_devices`` row with a non-NULL ``sm_util`` exists for the GPU set at
   ``(host, ts)``; else ``idle`` when the mean ``sm_util`` of those GPUs is
   below the threshold (``gpu_idle_below``, percent, default 10); else ``busy``.

SQL plan (:func:`classified_ctes`): ``procs`` (the selected processes and
their label) → ``gpu_sets`` (one ``Array(UInt16)`` per process, from ``nvml``,
the label or ``host_gpus``) and ``dev_sec`` (one row per host and second:
parallel arrays of GPU indexes and ``sm_util``, NULL as NaN) → ``classified``:
the selected sample rows LEFT JOIN both (each a 1:1 match), the mean over the
set's indexes computed with array functions. No per-row work happens in
Python. ClickHouse inlines a CTE at each use, so ``procs`` is re-read by the
``IN`` filters that keep the GPU tables' scans to the selected hosts; on
200k sample rows the classification costs ~150 ms against ~20 ms for the
plain sum, which is why ``gpu_state=any`` skips it.

Every CTE list here expects the ``where`` fragment over ``samples`` to bind
``t_from``/``t_to`` (unix seconds, ``[t_from, t_to)``), as
:meth:`flamehouse.collector.query.QueryService` filters do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from flamehouse.collector import QueryError

log = logging.getLogger(__name__)

#: Accepted ``gpu_state`` values; ``any`` skips the GPU join altogether.
GPU_STATES = ("any", "busy", "idle", "none")
#: Mean SM utilisation (percent) under which a GPU set counts as idle.
DEFAULT_IDLE_BELOW = 10.0

_RANGE = "ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({t_to:UInt32})"


@dataclass(frozen=True, slots=True)
class GpuFilter:
    """A validated ``gpu_state`` filter and idle threshold."""

    #: One of :data:`GPU_STATES`.
    state: str = "any"
    #: Percent of SM utilisation under which a second counts as idle.
    idle_below: float = DEFAULT_IDLE_BELOW

    @property
    def params(self) -> dict[str, Any]:
        """The bound parameters the classification SQL uses."""
        return {"gpu_state": self.state, "gpu_idle_below": float(self.idle_below)}


def gpu_filter(state: str = "any", idle_below: float = DEFAULT_IDLE_BELOW) -> GpuFilter:
    """Validates ``gpu_state`` and ``gpu_idle_below``; raises QueryError saying what to fix."""
    if state not in GPU_STATES:
        raise QueryError(f"invalid gpu_state {state!r}: expected one of {', '.join(GPU_STATES)}")
    if not math.isfinite(idle_below) or not 0 <= idle_below <= 100:
        raise QueryError(f"gpu_idle_below must be a percentage between 0 and 100, got {idle_below}")
    return GpuFilter(state, float(idle_below))


def procs_cte(db: str, where: str) -> str:
    """``procs (host, pid, cvd)``: the processes of the samples matching ``where``, with their label."""
    return (
        f"procs AS (SELECT host, pid, any(labels['cuda_visible_devices']) AS cvd "
        f"FROM {db}.samples WHERE {where} GROUP BY host, pid)"
    )


def gpu_set_ctes(db: str) -> str:
    """``host_gpus``, ``nvml`` and ``gpu_sets (host, pid, gpus)`` over a ``procs`` CTE.

    ``gpus`` is the process's GPU set as ``Array(UInt16)`` (empty when its host
    has no GPU data at all).
    """
    return f"""
host_gpus AS (
    SELECT host, groupArray(gpu_index) AS idx, groupArray(gpu_uuid) AS uuids
    FROM (
        SELECT host, gpu_index, any(gpu_uuid) AS gpu_uuid FROM {db}.gpu_devices
        WHERE {_RANGE} AND host IN (SELECT host FROM procs)
        GROUP BY host, gpu_index
    )
    GROUP BY host
),
nvml AS (
    SELECT host, pid, groupUniqArray(gpu_index) AS idx FROM {db}.gpu_processes
    WHERE {_RANGE} AND (host, pid) IN (SELECT host, pid FROM procs)
    GROUP BY host, pid
),
gpu_sets AS (
    SELECT p.host AS host, p.pid AS pid,
        arrayFilter(t -> t != '', arrayMap(t -> trimBoth(t), splitByChar(',', p.cvd))) AS tokens,
        arrayMap(i -> toUInt16(i), arrayDistinct(arrayFilter(i -> i BETWEEN 0 AND 65535, arrayMap(
            t -> if(match(t, '^[0-9]+$') AND length(t) <= 5, toInt32OrDefault(t, toInt32(-1)),
                    if(indexOf(h.uuids, t) > 0, toInt32(h.idx[indexOf(h.uuids, t)]), -1)),
            tokens)))) AS named,
        multiIf(notEmpty(n.idx), n.idx, notEmpty(named), named, h.idx) AS gpus
    FROM procs AS p
    LEFT JOIN nvml AS n ON n.host = p.host AND n.pid = p.pid
    LEFT JOIN host_gpus AS h ON h.host = p.host
)"""


def classified_ctes(db: str, where: str) -> str:
    """CTEs ending in ``classified (ts, host, pid, stack_id, cnt, util, gpu_state)``.

    ``util`` is the mean ``sm_util`` of the row's GPU set in that second
    (NULL without data); ``gpu_state`` is ``busy``, ``idle`` or ``none`` for
    the bound threshold ``gpu_idle_below``.
    """
    return f"""
{procs_cte(db, where)},
{gpu_set_ctes(db)},
dev_sec AS (
    SELECT host, ts, groupArray(gpu_index) AS gi, groupArray(ifNull(toFloat64(sm_util), nan)) AS su
    FROM {db}.gpu_devices
    WHERE {_RANGE} AND host IN (SELECT host FROM procs)
    GROUP BY host, ts
),
classified AS (
    SELECT s.ts AS ts, s.host AS host, s.pid AS pid, s.stack_id AS stack_id, s.cnt AS cnt,
        arrayFilter((u, i) -> has(g.gpus, i) AND NOT isNaN(u), d.su, d.gi) AS utils,
        if(empty(utils), NULL, arrayAvg(utils)) AS util,
        multiIf(util IS NULL, 'none', util < {{gpu_idle_below:Float64}}, 'idle', 'busy') AS gpu_state
    FROM (SELECT ts, host, pid, stack_id, count AS cnt FROM {db}.samples WHERE {where}) AS s
    LEFT JOIN gpu_sets AS g ON g.host = s.host AND g.pid = s.pid
    LEFT JOIN dev_sec AS d ON d.host = s.host AND d.ts = s.ts
)"""


def counts_ctes(db: str, where: str, gpu: GpuFilter) -> str:
    """CTEs ``counts (stack_id, n, grand)`` and ``stack_ids`` for the samples in the wanted GPU state.

    ``n`` is the selected samples of the stack, ``grand`` the selected samples
    of all stacks (a window total, the same on every row), so one query yields
    both the profile and its ``total_samples``. ``stack_ids`` (a superset of
    the stacks in ``counts``) bounds the scan of ``stacks``.

    With ``gpu.state == "any"`` this is a plain ``GROUP BY`` over ``samples``,
    without any GPU table. Otherwise ``stack_ids`` reads ``samples`` again
    rather than ``counts``: ClickHouse inlines a CTE at each use, and the
    classification is the expensive part.
    """
    if gpu.state == "any":
        return (
            "counts AS (SELECT stack_id, sum(count) AS n, sum(sum(count)) OVER () AS grand "
            f"FROM {db}.samples WHERE {where} GROUP BY stack_id),\n"
            "stack_ids AS (SELECT stack_id FROM counts)"
        )
    return (
        f"{classified_ctes(db, where)},\n"
        "counts AS (SELECT stack_id, sum(cnt) AS n, sum(sum(cnt)) OVER () AS grand FROM classified "
        "WHERE gpu_state = {gpu_state:String} GROUP BY stack_id),\n"
        f"stack_ids AS (SELECT DISTINCT stack_id FROM {db}.samples WHERE {where})"
    )


def total_sql(db: str, where: str, gpu: GpuFilter) -> str:
    """The selected samples in the wanted GPU state, for when a profile query returned no rows."""
    if gpu.state == "any":
        return f"SELECT sum(count) FROM {db}.samples WHERE {where}"
    return f"WITH {classified_ctes(db, where)} SELECT sum(cnt) FROM classified WHERE gpu_state = {{gpu_state:String}}"

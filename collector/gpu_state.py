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

SQL plan (:func:`state_ctes`): the state is computed on the small GPU side
first, once per process and second, then looked up by each sample row.

* ``procs``: the selected processes of hosts with GPU rows in the range and
  their label, read from ``rows`` (a rollup answers this exactly: it keeps
  every label); ``gpu_sets``: one ``Array(UInt16)`` per process (from
  ``nvml``, the label or ``host_gpus``); ``set_members``: one row per process
  and GPU of its set;
* ``gpu_sec (hk, pid, ts, code)``: the ``gpu_devices`` rows with a utilisation
  (not NULL, not NaN) joined to ``set_members`` by host and GPU index, averaged
  per process and second; a second without such a row has no group, so only the
  busy (``code`` 2) and idle (1) seconds exist: every other second is ``none``.
  (Joining per device row beat grouping each second's devices into arrays and
  filtering them per process: 365 → 241 ms at 10M rows in bench/queries.py's data);
* the sample rows test ``(hk, pid, ts, code) IN gpu_sec`` (:func:`in_state`).
  Every test names the same subquery, so ClickHouse builds one set; the
  wanted state is a bound value (``gpu_code``), so the SQL text is the same
  for every state.

``hk`` (:func:`host_key`) is the host's position among the hosts with GPU
rows in the range (0 for every other host): an exact numeric stand-in for the
name, because a ``LowCardinality(String)`` in a grouping or set key costs 2-5x
a fixed-width one. At 10M sample rows with GPU data (bench/queries.py) the
old plan (grouping every sample row by second, process and stack, then two
joins) took ~9.7 s; this one ~1 s (see BENCHMARKS.md). ``gpu_state=any``
skips all of it.

ClickHouse inlines a CTE at each use, so ``procs`` is read again by the
``IN`` filters that keep the GPU tables' scans to the selected hosts
(``narrow``); callers drop them when the selector has no label matcher.

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
#: ``gpu_sec.code`` of each classified state (``none`` is every second not in ``gpu_sec``).
STATE_CODES = {"idle": 1, "busy": 2}

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
        """The bound parameters the classification SQL uses (``gpu_code``: see :data:`STATE_CODES`, ``none`` 0)."""
        code = STATE_CODES.get(self.state, 0)
        return {"gpu_state": self.state, "gpu_code": code, "gpu_idle_below": float(self.idle_below)}


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


def _gpu_set_ctes(db: str, key: str, key_expr: str, device_filter: str, process_filter: str) -> str:
    """``host_gpus``, ``nvml`` and ``gpu_sets (key, pid, gpus)`` over a ``procs (key, pid, cvd)`` CTE.

    ``key`` names the host column (``key_expr`` computes it from ``host``);
    the filters are extra ``AND`` conditions on ``gpu_devices`` / ``gpu_processes``.
    """
    return f"""
host_gpus AS (
    SELECT {key}, groupArray(gpu_index) AS idx, groupArray(gpu_uuid) AS uuids
    FROM (
        SELECT {key_expr} AS {key}, gpu_index, any(gpu_uuid) AS gpu_uuid FROM {db}.gpu_devices
        WHERE {_RANGE}{device_filter}
        GROUP BY {key}, gpu_index
    )
    GROUP BY {key}
),
nvml AS (
    SELECT {key_expr} AS {key}, pid, groupUniqArray(gpu_index) AS idx FROM {db}.gpu_processes
    WHERE {_RANGE}{process_filter}
    GROUP BY {key}, pid
),
gpu_sets AS (
    SELECT p.{key} AS {key}, p.pid AS pid,
        arrayFilter(t -> t != '', arrayMap(t -> trimBoth(t), splitByChar(',', p.cvd))) AS tokens,
        arrayMap(i -> toUInt16(i), arrayDistinct(arrayFilter(i -> i BETWEEN 0 AND 65535, arrayMap(
            t -> if(match(t, '^[0-9]+$') AND length(t) <= 5, toInt32OrDefault(t, toInt32(-1)),
                    if(indexOf(h.uuids, t) > 0, toInt32(h.idx[indexOf(h.uuids, t)]), -1)),
            tokens)))) AS named,
        multiIf(notEmpty(n.idx), n.idx, notEmpty(named), named, h.idx) AS gpus
    FROM procs AS p
    LEFT JOIN nvml AS n ON n.{key} = p.{key} AND n.pid = p.pid
    LEFT JOIN host_gpus AS h ON h.{key} = p.{key}
)"""


def gpu_set_ctes(db: str) -> str:
    """``host_gpus``, ``nvml`` and ``gpu_sets (host, pid, gpus)`` over a ``procs`` CTE (:func:`procs_cte`).

    ``gpus`` is the process's GPU set as ``Array(UInt16)`` (empty when its host
    has no GPU data at all). The GPU tables are read for the processes' hosts only.
    """
    return _gpu_set_ctes(
        db, "host", "host", " AND host IN (SELECT host FROM procs)", " AND (host, pid) IN (SELECT host, pid FROM procs)"
    )


def host_key(column: str = "host") -> str:
    """``column``'s position among the hosts with ``gpu_devices`` rows in the range (1-based, sorted; else 0).

    A ``UInt32`` that stands for the host exactly wherever the host has GPU data,
    so it can replace the name in grouping and set keys. ``transform`` over a
    ``LowCardinality`` column runs once per distinct value. Needs the scalar
    ``gpu_hosts`` that :func:`state_ctes` defines (computed once per query).
    """
    return f"CAST(transform({column}, gpu_hosts, arrayEnumerate(gpu_hosts), toUInt32(0)), 'UInt32')"


def samples_sql(db: str, where: str, columns: str) -> str:
    """A subquery of ``columns`` of the raw sample rows matching ``where``."""
    return f"(SELECT {columns} FROM {db}.samples WHERE {where})"


def state_ctes(db: str, where: str, *, rows: str | None = None, narrow: bool = True) -> str:
    """CTEs ending in ``gpu_sec (hk, pid, ts, code)``: the busy (2) and idle (1) seconds of the selected processes.

    ``rows`` is a subquery with the ``host, pid, labels`` of the selected
    samples (default: raw ``samples`` matching ``where``; any table holding the
    same label sets per process will do). ``narrow`` reads the GPU tables for
    the selected processes' hosts only (it costs one more read of ``rows``,
    worth it when the selector picks a few hosts among many). The label comes
    from one map per process (``any(labels)[...]``: a third cheaper than looking
    it up in every row's map).
    """
    rows = rows or samples_sql(db, where, "host, pid, labels")
    hk = host_key()
    device_filter = " AND host IN (SELECT host_name FROM procs)" if narrow else ""
    sets = _gpu_set_ctes(db, "hk", hk, device_filter, device_filter)
    return f"""
(SELECT arraySort(groupUniqArray(host)) FROM {db}.gpu_devices WHERE {_RANGE}) AS gpu_hosts,
procs AS (
    SELECT {hk} AS hk, pid, any(host) AS host_name, any(labels)['cuda_visible_devices'] AS cvd
    FROM {rows} WHERE hk != 0 GROUP BY hk, pid
),
{sets},
set_members AS (SELECT hk, pid, arrayJoin(gpus) AS gi FROM gpu_sets),
gpu_sec AS (
    SELECT hk, pid, ts,
        toUInt8(if(avg(u) < {{gpu_idle_below:Float64}}, {STATE_CODES["idle"]}, {STATE_CODES["busy"]})) AS code
    FROM (
        SELECT d.hk AS hk, m.pid AS pid, d.ts AS ts, d.u AS u
        FROM (
            SELECT {hk} AS hk, ts, gpu_index AS gi, toFloat64(sm_util) AS u FROM {db}.gpu_devices
            WHERE {_RANGE}{device_filter} AND sm_util IS NOT NULL AND NOT isNaN(sm_util)
        ) AS d
        INNER JOIN set_members AS m ON m.hk = d.hk AND m.gi = d.gi
    )
    GROUP BY hk, pid, ts
)"""


_GPU_SEC = "(SELECT hk, pid, ts, code FROM gpu_sec)"


def in_state(code: str) -> str:
    """A condition over ``samples`` columns: the row's second has state ``code`` (SQL for 1 or 2).

    Needs :func:`state_ctes`. Every test names the same subquery, so ClickHouse builds one set.
    """
    return f"({host_key()}, pid, ts, toUInt8({code})) IN {_GPU_SEC}"


def in_wanted_state() -> str:
    """A condition over ``samples`` columns: the row's second is in the bound ``gpu_state`` (``gpu_code``).

    One SQL text for every state (the state is a bound value); the constant
    condition folds, leaving one set lookup per row for busy or idle, two for none.
    """
    none = " AND ".join(f"NOT {in_state(str(code))}" for code in STATE_CODES.values())
    return f"if({{gpu_code:UInt8}} = 0, {none}, {in_state('{gpu_code:UInt8}')})"


def counts_pair(counts: str, stack_rows: str, *, materialize: bool = False) -> str:
    """The CTEs ``counts`` (``SELECT`` body ``counts``) and ``stack_ids``, a superset of its stacks.

    ClickHouse inlines a CTE at each use: ``stack_ids`` reads ``stack_rows`` (a
    subquery with the selected ``stack_id`` column) rather than running ``counts``
    twice. With ``materialize`` (a store that has ``enable_materialized_cte``; the
    query must end in :data:`MATERIALIZE_SETTINGS`), ``counts`` runs once into a
    temporary table and ``stack_ids`` reads it: ~30 % off top, flame graph and lines
    over a rollup. Not for the classifying counts: there it cost ~100 ms more (at
    100k and at 10M rows; the sets of :func:`in_state` seem to be built again).
    """
    if materialize:
        return f"counts AS MATERIALIZED ({counts}),\nstack_ids AS (SELECT stack_id FROM counts)"
    return f"counts AS ({counts}),\nstack_ids AS (SELECT DISTINCT stack_id FROM {stack_rows})"


#: The ``SETTINGS`` clause a query built with ``materialize=True`` ends with.
MATERIALIZE_SETTINGS = "\nSETTINGS enable_materialized_cte = 1"


@dataclass(frozen=True, slots=True)
class Classified:
    """What a classifying count reads besides the raw seconds it classifies."""

    #: A subquery with the ``host, pid, labels`` of the selected samples (:func:`state_ctes`; default raw rows).
    rows: str | None = None
    #: A subquery with the selected ``stack_id`` column, for ``stack_ids`` (default raw rows).
    stack_rows: str | None = None
    #: Read the GPU tables for the selected processes' hosts only (:func:`state_ctes`).
    narrow: bool = True


RAW_INPUTS = Classified()


def _classified_ctes(db: str, where: str, counts: str, inputs: Classified) -> str:
    """:func:`state_ctes` then ``counts`` (a body using :func:`in_state`) and ``stack_ids``."""
    pair = counts_pair(counts, inputs.stack_rows or samples_sql(db, where, "stack_id"))
    return f"{state_ctes(db, where, rows=inputs.rows, narrow=inputs.narrow)},\n{pair}"


def counts_ctes(
    db: str, where: str, gpu: GpuFilter, inputs: Classified = RAW_INPUTS, *, materialize: bool = False
) -> str:
    """CTEs ``counts (stack_id, n, grand)`` and ``stack_ids`` for the samples in the wanted GPU state.

    ``n`` is the selected samples of the stack, ``grand`` the selected samples
    of all stacks (a window total, the same on every row), so one query yields
    both the profile and its ``total_samples``. ``stack_ids`` (a superset of
    the stacks in ``counts``, see :func:`counts_pair`) bounds the scan of ``stacks``.

    With ``gpu.state == "any"`` this is a plain ``GROUP BY`` over ``samples``,
    without any GPU table. Otherwise ``counts`` reads raw seconds and tests
    each row's second (:func:`in_state`), reading labels and stack ids as
    ``inputs`` says: the classification is the expensive part. ``materialize``
    applies to ``any`` only (see :func:`counts_pair`).
    """
    total = "sum(count) AS n, sum(sum(count)) OVER () AS grand"
    if gpu.state == "any":
        counts = f"SELECT stack_id, {total} FROM {db}.samples WHERE {where} GROUP BY stack_id"
        return counts_pair(counts, inputs.stack_rows or "counts", materialize=materialize)
    counts = f"SELECT stack_id, {total} FROM {db}.samples WHERE ({where}) AND {in_wanted_state()} GROUP BY stack_id"
    return _classified_ctes(db, where, counts, inputs)


def split_counts_ctes(db: str, where: str, gpu: GpuFilter, inputs: Classified = RAW_INPUTS) -> str:
    """CTEs ``counts (stack_id, n, busy, idle, grand)`` and ``stack_ids``: :func:`counts_ctes` with the busy/idle split.

    ``busy`` and ``idle`` are the stack's samples taken in busy / idle seconds
    (with ``gpu.state`` other than ``any``, the samples kept are those in that
    state only). Always classifies, even for ``any``.
    """
    if gpu.state == "any":
        cond = "1"
        busy, idle = (in_state(str(STATE_CODES[name])) for name in ("busy", "idle"))
        split = f"sumIf(count, {busy}) AS busy, sumIf(count, {idle}) AS idle"
    else:
        cond = in_wanted_state()
        split = ", ".join(
            f"if({{gpu_code:UInt8}} = {STATE_CODES[name]}, sum(count), toUInt64(0)) AS {name}"
            for name in ("busy", "idle")
        )
    counts = f"""
    SELECT stack_id, sum(count) AS n, {split}, sum(sum(count)) OVER () AS grand
    FROM {db}.samples WHERE ({where}) AND {cond} GROUP BY stack_id
"""
    return _classified_ctes(db, where, counts, inputs)

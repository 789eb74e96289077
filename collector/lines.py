"""Cost per source line: self and total samples, CPU seconds and GPU-busy/idle seconds.

A line is a frame, ``(function, file, line)`` as identified by
:func:`flamehouse.proto.ids.frame_id`; in practice one (file, line) is one
function, except a lambda or comprehension sharing a line with its caller,
which stays a row of its own.

* ``self``: samples whose leaf frame is that line;
* ``total``: samples of stacks containing that line, once per stack;
* ``cpu_seconds``: ``self / rate`` (``rate`` is the agent's sampling rate,
  since rows store sample counts; for ``kind=wall`` these are wall seconds);
* ``gpu_busy_seconds`` / ``gpu_idle_seconds``: the line's self samples taken
  in seconds whose GPU state (see :mod:`.gpu_state`) was busy / idle, divided
  by ``rate``: the GPU time spent, or wasted, while the process sat at that
  line. Like CPU seconds these are per sampled thread, not per GPU.

Everything is summed in ClickHouse (one ``ARRAY JOIN`` over the distinct frame
ids of each selected stack); Python divides by ``rate``.

Which counts: when the range holds no ``gpu_devices`` row at all (one cheap
query), every sample is ``none``, nothing is busy or idle, and the counts
come from the coarsest tables that answer the range (:mod:`.rollup`, as for
top and the flame graph). Otherwise raw seconds are classified
(:func:`.gpu_state.split_counts_ctes`), with the processes' labels and the
stack ids still read from the rollup.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TypedDict

from flamehouse.collector import QueryError
from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.flame import stacks_sql
from flamehouse.collector.gpu_state import MATERIALIZE_SETTINGS, split_counts_ctes
from flamehouse.collector.rollup import (
    RAW,
    Plan,
    classified_inputs,
    classifying,
    counts_ctes,
    query_params,
    unclassified,
)
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

#: py-spy's default sampling rate, samples per second.
DEFAULT_RATE = 99.0
MAX_RATE = 100_000.0


class LineJSON(TypedDict):
    file: str
    line: int
    function: str
    self: int
    total: int
    cpu_seconds: float
    gpu_busy_seconds: float
    gpu_idle_seconds: float


class LinesJSON(TypedDict):
    total_samples: int
    rate: float
    lines: list[LineJSON]


@dataclass(frozen=True, slots=True)
class LineCost:
    """Samples attributed to one source line."""

    function: str
    file: str
    line: int
    #: Samples where this line was the leaf frame.
    self_samples: int
    #: Samples whose stack holds this line, once per stack.
    total_samples: int
    #: Self samples taken while the process's GPUs were busy.
    busy_samples: int
    #: Self samples taken while the process's GPUs were idle.
    idle_samples: int

    def to_json(self, rate: float) -> LineJSON:
        return {
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "self": self.self_samples,
            "total": self.total_samples,
            "cpu_seconds": self.self_samples / rate,
            "gpu_busy_seconds": self.busy_samples / rate,
            "gpu_idle_seconds": self.idle_samples / rate,
        }


@dataclass(frozen=True, slots=True)
class LinesResult:
    """Lines by self samples, highest first."""

    total_samples: int
    rate: float
    lines: tuple[LineCost, ...]
    #: The coarsest table the counts came from (``samples``, or a rollup when the range has no GPU data).
    source: str = RAW

    def to_json(self) -> LinesJSON:
        return {
            "total_samples": self.total_samples,
            "rate": self.rate,
            "lines": [line.to_json(self.rate) for line in self.lines],
        }


def check_rate(rate: float) -> float:
    """``rate`` as a float; raises QueryError unless it is a positive sampling rate."""
    if not math.isfinite(rate) or not 0 < rate <= MAX_RATE:
        raise QueryError(f"rate must be a sampling rate in samples per second, 0 < rate <= {MAX_RATE:g}, got {rate}")
    return float(rate)


def lines_counts_ctes(
    where: SampleFilter, plan: Plan, db: str, *, has_gpu: bool, materialize: bool = False
) -> tuple[str, Plan, bool]:
    """``(ctes, plan, split)``: ``counts`` and ``stack_ids`` for :func:`lines_sql`, and the plan they read.

    Bind :func:`.rollup.query_params` of ``where`` and the returned plan (its ``source``
    is the table the counts came from). ``split`` tells whether ``counts`` has the
    ``busy`` and ``idle`` columns. Without GPU data in the range every sample is
    ``none``: the unclassified counts of the coarsest tables (``plan`` for
    ``gpu_state=any``, its ``coarse`` tiers otherwise). With GPU data: raw seconds,
    classified, labels and stack ids from :func:`.rollup.classifying` tiers.
    """
    if not has_gpu:
        plain, coarse = unclassified(where, plan)
        return counts_ctes(db, plain, coarse, materialize=materialize), coarse, False
    plan = classifying(where, plan)
    ctes = split_counts_ctes(db, where.sql, where.gpu, classified_inputs(db, where, plan.coarse or plan))
    return ctes, plan, True


def lines_sql(db: str, counts: str, *, split: bool = True) -> str:
    """Rows ``(function, file, line, self, total, busy_self, idle_self, total_samples)``, by self desc.

    ``counts`` is a CTE list ending in ``counts (stack_id, n[, busy, idle], grand)``
    (``busy``/``idle`` with ``split``, else zero) and ``stack_ids`` (see
    :func:`lines_counts_ctes`).
    """
    busy, idle = ("c.busy", "c.idle") if split else ("toUInt64(0)", "toUInt64(0)")
    return f"""
WITH {counts},
per_frame AS (
    SELECT fid, sum(n) AS total, sumIf(n, fid = leaf) AS self,
           sumIf(busy, fid = leaf) AS busy_self, sumIf(idle, fid = leaf) AS idle_self, any(grand) AS grand
    FROM (
        SELECT c.n AS n, {busy} AS busy, {idle} AS idle, c.grand AS grand, s.fids AS fids, s.fids[-1] AS leaf
        FROM counts AS c INNER JOIN ({stacks_sql(db, "line")}) AS s ON s.stack_id = c.stack_id
    )
    ARRAY JOIN arrayDistinct(fids) AS fid
    GROUP BY fid
)
SELECT if(f.function = '', concat('<unknown ', hex(p.fid), '>'), f.function) AS name, f.file AS file,
       f.line AS line, p.self, p.total, p.busy_self, p.idle_self, p.grand
FROM per_frame AS p LEFT JOIN (
    SELECT frame_id, any(function) AS function, any(file) AS file, any(line) AS line
    FROM {db}.frames GROUP BY frame_id
) AS f ON f.frame_id = p.fid
ORDER BY p.self DESC, p.total DESC, file ASC, line ASC, name ASC
LIMIT {{limit:UInt32}}
"""


def has_gpu_data(store: Store, where: SampleFilter) -> bool:
    """Whether any ``gpu_devices`` row lies in ``where``'s range (any host)."""
    rows = store.query(
        f"SELECT count() > 0 FROM (SELECT 1 FROM {store.db}.gpu_devices WHERE ts >= toDateTime({{t_from:UInt32}}) "
        "AND ts < toDateTime({t_to:UInt32}) LIMIT 1)",
        {"t_from": where.start, "t_to": where.end},
    )
    return bool(rows and rows[0][0])


def query_lines(
    store: Store, where: SampleFilter, plan: Plan, *, limit: int, rate: float, materialize: bool = False
) -> LinesResult:
    """The ``limit`` lines with the most self samples among the selected samples in ``where.gpu.state``.

    ``plan`` is what :meth:`flamehouse.collector.query.QueryService.plan` chose for ``where``;
    ``materialize``: see :func:`.gpu_state.counts_pair`.
    """
    rate = check_rate(rate)
    started = time.perf_counter()
    has_gpu = has_gpu_data(store, where)
    if not has_gpu and where.gpu.state in ("busy", "idle"):
        return LinesResult(0, rate, ())  # no GPU data: nothing is busy or idle
    counts, read, split = lines_counts_ctes(where, plan, store.db, has_gpu=has_gpu, materialize=materialize)
    params = query_params(where, read)
    settings = MATERIALIZE_SETTINGS if materialize else ""
    rows = store.query(lines_sql(store.db, counts, split=split) + settings, {**params, "limit": limit})
    if rows:
        total = int(rows[0][7])
    else:  # no known stack: the samples may still exist
        total_rows = store.query(f"WITH {counts} SELECT sum(n) FROM counts{settings}", params)
        total = int(total_rows[0][0] or 0) if total_rows else 0
    lines = tuple(LineCost(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    log.debug("query lines source=%s rows=%d elapsed_ms=%.1f", read.source, len(rows), elapsed_ms)
    return LinesResult(total, rate, lines, read.source)

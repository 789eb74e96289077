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
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TypedDict

from flamehouse.collector import QueryError
from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import GpuFilter, classified_ctes
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


def _counts_ctes(db: str, where: str, gpu: GpuFilter, *, has_gpu: bool = True) -> str:
    """``counts (stack_id, n, busy, idle, grand)`` over the classified sample rows (``grand``: all stacks).

    Without any GPU data in the range every row is ``none``: the classification (the
    expensive part, ~90 % of the query) is skipped and busy/idle are zero.
    """
    if not has_gpu:
        keep = "1" if gpu.state in ("any", "none") else "0"
        return f"""counts AS (
    SELECT stack_id, sum(count) AS n, toUInt64(0) AS busy, toUInt64(0) AS idle, sum(sum(count)) OVER () AS grand
    FROM {db}.samples WHERE ({where}) AND {keep} GROUP BY stack_id
)"""
    state = "1" if gpu.state == "any" else "gpu_state = {gpu_state:String}"
    return f"""{classified_ctes(db, where)},
counts AS (
    SELECT stack_id, sum(cnt) AS n, sumIf(cnt, gpu_state = 'busy') AS busy, sumIf(cnt, gpu_state = 'idle') AS idle,
           sum(sum(cnt)) OVER () AS grand
    FROM classified WHERE {state} GROUP BY stack_id
)"""


def lines_sql(db: str, where: str, gpu: GpuFilter, *, has_gpu: bool = True) -> str:
    """Rows ``(function, file, line, self, total, busy_self, idle_self, total_samples)``, by self desc.

    ``counts`` is used once (ClickHouse inlines a CTE at each use), so the
    stacks are bounded by the selected samples' stack ids, not by ``counts``.
    """
    return f"""
WITH {_counts_ctes(db, where, gpu, has_gpu=has_gpu)},
per_frame AS (
    SELECT fid, sum(n) AS total, sumIf(n, fid = leaf) AS self,
           sumIf(busy, fid = leaf) AS busy_self, sumIf(idle, fid = leaf) AS idle_self, any(grand) AS grand
    FROM (
        SELECT c.n AS n, c.busy AS busy, c.idle AS idle, c.grand AS grand, s.fids AS fids, s.fids[-1] AS leaf
        FROM counts AS c INNER JOIN (
            SELECT stack_id, any(frame_ids) AS fids FROM {db}.stacks
            WHERE stack_id IN (SELECT DISTINCT stack_id FROM {db}.samples WHERE {where}) GROUP BY stack_id
        ) AS s ON s.stack_id = c.stack_id
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


def query_lines(store: Store, where: SampleFilter, gpu: GpuFilter, *, limit: int, rate: float) -> LinesResult:
    """The ``limit`` lines with the most self samples among the selected samples in ``gpu.state``."""
    rate = check_rate(rate)
    started = time.perf_counter()
    params = {**where.params, **gpu.params}
    gpu_rows = store.query(
        f"SELECT count() FROM {store.db}.gpu_devices WHERE ts >= toDateTime({{t_from:UInt32}}) "
        "AND ts < toDateTime({t_to:UInt32})",
        {"t_from": where.start, "t_to": where.end},
    )
    has_gpu = bool(gpu_rows and gpu_rows[0][0])
    rows = store.query(lines_sql(store.db, where.sql, gpu, has_gpu=has_gpu), {**params, "limit": limit})
    if rows:
        total = int(rows[0][7])
    else:  # no known stack: the samples may still exist
        counts = _counts_ctes(store.db, where.sql, gpu, has_gpu=has_gpu)
        total_rows = store.query(f"WITH {counts} SELECT sum(n) FROM counts", params)
        total = int(total_rows[0][0] or 0) if total_rows else 0
    lines = tuple(LineCost(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows)
    log.debug("query lines rows=%d elapsed_ms=%.1f", len(rows), (time.perf_counter() - started) * 1e3)
    return LinesResult(total, rate, lines)

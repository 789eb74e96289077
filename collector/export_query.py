"""Aggregated stacks for exports: every selected stack with its frames and sample count.

The exports (speedscope, pprof, folded; see :mod:`flamehouse.ui.formats`) need
whole stacks, not a merged tree: one row per distinct stack (and thread, when
asked) with its frames root first. Two queries, both aggregated in ClickHouse:

1. counts per ``stack_id`` (and ``thread``) over the filtered samples (with a
   ``gpu_state``, over the samples classified by :mod:`.gpu_state`; threads are
   then merged), joined to the deduplicated ``stacks`` (``any(frame_ids)``);
2. the frames of those stacks, ``(function, file, line)`` by ``frame_id``,
   restricted by the same filter (a subquery), so no id list travels as a
   parameter.

Samples whose stack was never stored become one ``<unknown stack>`` frame and
frames missing from ``frames`` become ``<unknown HEX>``, so totals conserve
samples exactly. User input reaches SQL only as bound parameters (see
:mod:`.filters`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flamehouse.collector import QueryError
from flamehouse.collector.filters import FilterBuilder, SampleFilter
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW, counts_ctes
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

#: Most distinct (stack, thread) rows one export may hold; a wider one asks for a narrower range.
MAX_EXPORT_STACKS = 500_000

#: The frame standing for samples whose stack was never stored.
UNKNOWN_STACK = ("<unknown stack>", "", 0)


@dataclass(frozen=True, slots=True)
class ExportFrame:
    """One frame: a source line of a function."""

    function: str
    file: str
    #: Line being executed; 0 when unknown.
    line: int


@dataclass(frozen=True, slots=True)
class ExportStack:
    """``count`` samples of one stack (of one thread, in a per-thread export)."""

    #: Frames root first; never empty.
    frames: tuple[ExportFrame, ...]
    #: Thread name; "" in a merged export (or when the agent did not know it).
    thread: str
    count: int


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Every selected stack, largest count first; counts sum to ``total_samples``."""

    stacks: tuple[ExportStack, ...]
    total_samples: int
    #: The resolved range, unix seconds, half-open.
    start: int
    end: int
    kind: str
    per_thread: bool


def _counts_ctes(db: str, where: SampleFilter, per_thread: bool) -> str:
    """CTEs ending in ``by_stack (stack_id, thread_name, n)``: selected samples per stack (and thread)."""
    if where.gpu.state != "any":
        if per_thread:
            raise QueryError("a per-thread export cannot filter by gpu_state: export merged threads instead")
        return (
            f"{counts_ctes(db, where.sql, where.gpu)},\nby_stack AS (SELECT stack_id, '' AS thread_name, n FROM counts)"
        )
    thread = "thread" if per_thread else "''"
    return (
        f"by_stack AS (SELECT stack_id, {thread} AS thread_name, sum(count) AS n "
        f"FROM {db}.samples WHERE {where.sql} GROUP BY stack_id, thread_name)"
    )


def _stacks_sql(db: str, where: SampleFilter, per_thread: bool) -> str:
    return f"""
WITH {_counts_ctes(db, where, per_thread)}
SELECT c.thread_name, c.n, s.fids
FROM by_stack AS c LEFT JOIN (
    SELECT stack_id, any(frame_ids) AS fids FROM {db}.stacks
    WHERE stack_id IN (SELECT stack_id FROM by_stack) GROUP BY stack_id
) AS s ON s.stack_id = c.stack_id
ORDER BY c.n DESC, c.stack_id ASC, c.thread_name ASC
LIMIT {{max_stacks:UInt32}}
"""


def _frames_sql(db: str, where: str) -> str:
    return f"""
SELECT frame_id, any(function), any(file), any(line) FROM {db}.frames
WHERE frame_id IN (
    SELECT arrayJoin(frame_ids) FROM {db}.stacks
    WHERE stack_id IN (SELECT DISTINCT stack_id FROM {db}.samples WHERE {where})
)
GROUP BY frame_id
"""


class ExportQuery:
    """Reads :class:`ExportResult` objects from a store; one per app (it caches checked regexes)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._filters = FilterBuilder(store)

    def stacks(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
        per_thread: bool = False,
        now: float | None = None,
        max_stacks: int = MAX_EXPORT_STACKS,
    ) -> ExportResult:
        """The selected stacks with frames and counts.

        ``kind`` (default ``cpu``) and ``gpu_state`` (default ``any``) may also
        be written in the selector, as in the other profile queries. Raises
        :class:`~flamehouse.collector.QueryError` for bad input and when the
        selection holds more than ``max_stacks`` distinct rows.
        """
        where = self._filters.profile(
            selector, from_, to, now, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
        )
        started = time.perf_counter()
        sql = _stacks_sql(self.store.db, where, per_thread)
        params = {**where.params, **where.gpu.params, "max_stacks": max_stacks + 1}
        rows = self.store.query(sql, params)
        if len(rows) > max_stacks:
            raise QueryError(
                f"the selection holds more than {max_stacks} distinct stacks: narrow the selector or the time range"
            )
        frames = _frame_table(self.store, where) if rows else {}
        stacks = tuple(ExportStack(_frames_of(row[2], frames), str(row[0]), int(row[1])) for row in rows)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        log.debug("query export stacks=%d frames=%d elapsed_ms=%.1f", len(stacks), len(frames), elapsed_ms)
        total = sum(s.count for s in stacks)
        return ExportResult(stacks, total, where.start, where.end, where.kind or "cpu", per_thread)


def _frame_table(store: Store, where: SampleFilter) -> dict[int, ExportFrame]:
    rows = store.query(_frames_sql(store.db, where.sql), where.params)
    return {int(r[0]): ExportFrame(str(r[1]), str(r[2]), int(r[3])) for r in rows}


def _frames_of(frame_ids: Any, frames: dict[int, ExportFrame]) -> tuple[ExportFrame, ...]:
    """The frames of one stack, root first; an unknown stack is one placeholder frame."""
    if not frame_ids:
        return (ExportFrame(*UNKNOWN_STACK),)
    return tuple(frames.get(int(fid)) or ExportFrame(f"<unknown {int(fid):016X}>", "", 0) for fid in frame_ids)

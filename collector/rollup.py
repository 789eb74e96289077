"""Long ranges: the per-minute and per-hour rollups, and which tables answer a query.

``samples_1m`` and ``samples_1h`` (migration ``003_rollup.sql``) hold one row
per (minute or hour, service, job, host, pid, rank, thread, kind, labels,
stack) with the summed ``count``. Materialized views fill both from every
insert into ``samples``, so they are exactly as fresh as the raw table; they
are ``SummingMergeTree`` tables (rows of one key are summed when parts merge,
readers ``sum()`` anyway) and share the raw table's insert deduplication, so a
retried batch counts once everywhere. Both keep ``--rollup-ttl-days`` (default
90) against 14 days for raw seconds.

Which tables (:func:`choose`) for a query over ``[start, end)``: the coarsest
that answer it **exactly**, each for the part of the range made of its whole
buckets:

* ``samples_1h`` for the whole hours inside the range, from one whole hour
  on (:data:`MIN_HOURS`: an hour bucket holds up to 60x fewer rows than its
  minutes, ~7x fewer in bench/queries.py, so reading the rollups of the edge
  minutes beside it is cheaper than reading all minutes);
* ``samples_1m`` for the whole minutes left (all of them without the hourly
  part), when the range holds at least :data:`MIN_MINUTES` whole minutes;
* ``samples`` for the seconds of the partial minutes at either edge
  (nothing when both ends are minute-aligned), or for the whole range when
  no rollup applies.

No rollup answers the counts when the query classifies samples by GPU state
per second (``gpu_state`` other than ``any``; ``/lines`` too when the range
holds GPU data, for its GPU-busy/idle seconds), or when the rollups keep less
than the raw table and the range starts before their retention. A classifying
plan still carries the tiers (``coarse``) for the reads that need no second:
the processes' labels and the superset of stack ids. The rollups drop only the second,
``tid`` and ``batch_id``, which no selector can name, so the choice never
changes a result while every table still holds the range; past the raw
retention only the rollups do. The coarsest table read is reported as
``source``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import Classified, GpuFilter, counts_pair
from flamehouse.collector.gpu_state import counts_ctes as raw_counts_ctes

log = logging.getLogger(__name__)

RAW = "samples"
MINUTES = "samples_1m"
HOURS = "samples_1h"
#: Rollup tables and their bucket width in seconds, coarsest first.
ROLLUPS: dict[str, int] = {HOURS: 3600, MINUTES: 60}
#: Whole minutes a range must hold before any rollup is read; shorter ranges are cheap on raw seconds.
MIN_MINUTES = 10
MIN_ROLLUP_SECONDS = MIN_MINUTES * 60
#: Whole hours a range must hold before ``samples_1h`` is read for them.
MIN_HOURS = 1

#: Columns every table shares, the ones a selector can name.
LABEL_COLUMNS = "service, job, host, pid, rank, thread, kind, labels"

_HOURS = "ts >= toDateTime({h_from:UInt32}) AND ts < toDateTime({h_to:UInt32})"
_MINUTES = "ts >= toDateTime({r_from:UInt32}) AND ts < toDateTime({r_to:UInt32})"
_MINUTES_AROUND_HOURS = (
    "(ts >= toDateTime({r_from:UInt32}) AND ts < toDateTime({h_from:UInt32}) "
    "OR ts >= toDateTime({h_to:UInt32}) AND ts < toDateTime({r_to:UInt32}))"
)
_EDGES = (
    "(ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({r_from:UInt32}) "
    "OR ts >= toDateTime({r_to:UInt32}) AND ts < toDateTime({t_to:UInt32}))"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """Which tables a query reads: raw seconds, or rollups for whole buckets plus raw edges."""

    #: The coarsest table read: :data:`RAW`, :data:`MINUTES` or :data:`HOURS`.
    source: str
    #: The minute-aligned part of the range, ``[r_from, r_to)``, read from the rollups.
    r_from: int = 0
    r_to: int = 0
    #: The hour-aligned part inside it, ``[h_from, h_to)``, read from ``samples_1h`` (empty: none).
    h_from: int = 0
    h_to: int = 0
    #: On a raw plan forced by ``gpu_state``: the tiers a ``gpu_state=any`` query would read, for
    #: what needs no second (labels, stack ids); ``None`` when that is raw seconds too.
    coarse: Plan | None = None

    @property
    def rollup(self) -> bool:
        return self.source != RAW

    @property
    def params(self) -> dict[str, Any]:
        """The bound parameters this plan adds (``r_from``, ``r_to``, ``h_from``, ``h_to``)."""
        if not self.rollup:
            return {}
        return {"r_from": self.r_from, "r_to": self.r_to, "h_from": self.h_from, "h_to": self.h_to}


RAW_PLAN = Plan(RAW)


def choose(where: SampleFilter, *, enabled: bool = True, rollup_from: int | None = None) -> Plan:
    """The coarsest tables that answer ``where`` exactly (see the module docstring).

    ``rollup_from`` is the oldest second the rollups are sure to hold when their
    retention is shorter than the raw table's (``None``: they hold at least as long).
    """
    if not enabled or (rollup_from is not None and where.start < rollup_from):
        return RAW_PLAN
    if where.gpu.state != "any":
        return classifying(where, _tiers(where))
    return _tiers(where)


def classifying(where: SampleFilter, plan: Plan) -> Plan:
    """The plan of a query that classifies seconds (raw counts), given what :func:`choose` gave it.

    Its ``coarse`` tiers are the ones ``plan`` would read: for what needs no second
    (the processes' labels and the stack ids).
    """
    if plan.coarse is not None or not plan.rollup:
        return plan
    return Plan(RAW, coarse=plan)


def classified_inputs(db: str, where: SampleFilter, coarse: Plan) -> Classified:
    """What a GPU-classified count reads from ``coarse`` tiers: the processes' labels, the stack ids."""
    return Classified(
        rows=rows_sql(db, where, coarse, "host, pid, labels"),
        stack_rows=rows_sql(db, where, coarse, "stack_id"),
        narrow=narrows(where),
    )


def _tiers(where: SampleFilter) -> Plan:
    """The coarsest tables for ``where``'s range, ignoring its GPU state."""
    r_from, r_to = _whole(where.start, where.end, ROLLUPS[MINUTES])
    if r_to - r_from < MIN_ROLLUP_SECONDS:
        return RAW_PLAN
    h_from, h_to = _whole(where.start, where.end, ROLLUPS[HOURS])
    if h_to - h_from >= MIN_HOURS * ROLLUPS[HOURS]:
        return Plan(HOURS, r_from, r_to, h_from, h_to)
    return Plan(MINUTES, r_from, r_to, r_to, r_to)


def _whole(start: int, end: int, width: int) -> tuple[int, int]:
    """The whole buckets of ``width`` seconds inside ``[start, end)`` (maybe empty: ``from >= to``)."""
    return -(-start // width) * width, end // width * width


def rows_sql(db: str, where: SampleFilter, plan: Plan, columns: str) -> str:
    """A subquery of the selected rows' ``columns`` (any of :data:`LABEL_COLUMNS`, ``ts``, ``stack_id``, ``count``).

    On a rollup plan ``ts`` is the bucket start, and the tables' parts are ``UNION ALL``-ed.
    """
    if not plan.rollup:
        return f"(SELECT {columns} FROM {db}.{RAW} WHERE {where.sql})"
    parts: list[tuple[str, str]] = []
    if plan.source == HOURS:
        parts += [(HOURS, _HOURS), (MINUTES, _MINUTES_AROUND_HOURS)]
    else:
        parts.append((MINUTES, _MINUTES))
    parts.append((RAW, _EDGES))
    selects = (f"SELECT {columns} FROM {db}.{table} WHERE {time} AND {where.match_sql}" for table, time in parts)
    return "(" + " UNION ALL ".join(selects) + ")"


def counts_ctes(db: str, where: SampleFilter, plan: Plan, *, materialize: bool = False) -> str:
    """CTEs ``counts (stack_id, n, grand)`` and ``stack_ids`` for a profile query, from the plan's tables.

    The same contract as :func:`flamehouse.collector.gpu_state.counts_ctes`, which
    answers the raw plan (and every GPU state other than ``any``, reading the
    labels and stack ids from ``plan.coarse``). ``materialize``: see
    :func:`flamehouse.collector.gpu_state.counts_pair`.
    """
    if not plan.rollup:
        if where.gpu.state == "any":
            return raw_counts_ctes(db, where.sql, where.gpu, materialize=materialize)
        return raw_counts_ctes(db, where.sql, where.gpu, classified_inputs(db, where, plan.coarse or plan))
    rows = rows_sql(db, where, plan, "stack_id, count AS cnt")
    counts = f"SELECT stack_id, sum(cnt) AS n, sum(sum(cnt)) OVER () AS grand FROM {rows} GROUP BY stack_id"
    return counts_pair(counts, "counts", materialize=materialize)


def query_params(where: SampleFilter, plan: Plan) -> dict[str, Any]:
    """Every parameter a query built from ``where`` and ``plan`` binds."""
    coarse = plan.coarse.params if plan.coarse is not None else {}
    return {**where.params, **where.gpu.params, **coarse, **plan.params}


def unclassified(where: SampleFilter, plan: Plan) -> tuple[SampleFilter, Plan]:
    """``where`` without its GPU state and the tables such a query may read (``plan.coarse`` when it has one)."""
    return replace(where, gpu=GpuFilter()), plan.coarse or plan


def narrows(where: SampleFilter) -> bool:
    """Whether the selector has a label matcher, so the selected processes may be a few hosts' among many.

    A filter binds only ``t_from``, ``t_to`` and ``kind`` when its selector is empty
    (:func:`flamehouse.collector.selector.to_sql` names every matcher's values).
    """
    return not set(where.params) <= {"t_from", "t_to", "kind"}

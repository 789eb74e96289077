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

* ``samples_1h`` for the whole hours inside the range, when there are at
  least :data:`MIN_BUCKETS` of them;
* ``samples_1m`` for the whole minutes left (all of them without the hourly
  part), when the range holds at least :data:`MIN_BUCKETS` whole minutes;
* ``samples`` for the seconds of the partial minutes at either edge
  (nothing when both ends are minute-aligned), or for the whole range when
  no rollup applies.

No rollup applies when the query classifies samples by GPU state per second
(``gpu_state`` other than ``any``; ``/lines`` always does, for its
GPU-busy/idle seconds), or when the rollups keep less than the raw table and
the range starts before their retention. The rollups drop only the second,
``tid`` and ``batch_id``, which no selector can name, so the choice never
changes a result while every table still holds the range; past the raw
retention only the rollups do. The coarsest table read is reported as
``source``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import counts_ctes as raw_counts_ctes

log = logging.getLogger(__name__)

RAW = "samples"
MINUTES = "samples_1m"
HOURS = "samples_1h"
#: Rollup tables and their bucket width in seconds, coarsest first.
ROLLUPS: dict[str, int] = {HOURS: 3600, MINUTES: 60}
#: Whole buckets a range must hold before a rollup is read for them.
MIN_BUCKETS = 10
#: Whole minutes a range must cover before any rollup is read; shorter ranges are cheap on raw seconds.
MIN_ROLLUP_SECONDS = MIN_BUCKETS * 60

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
    if not enabled or where.gpu.state != "any" or (rollup_from is not None and where.start < rollup_from):
        return RAW_PLAN
    r_from, r_to = _whole(where.start, where.end, ROLLUPS[MINUTES])
    if r_to - r_from < MIN_ROLLUP_SECONDS:
        return RAW_PLAN
    h_from, h_to = _whole(where.start, where.end, ROLLUPS[HOURS])
    if h_to - h_from >= MIN_BUCKETS * ROLLUPS[HOURS]:
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


def counts_ctes(db: str, where: SampleFilter, plan: Plan) -> str:
    """CTEs ``counts (stack_id, n, grand)`` and ``stack_ids`` for a profile query, from the plan's tables.

    The same contract as :func:`flamehouse.collector.gpu_state.counts_ctes`, which
    answers the raw plan (and every GPU state other than ``any``).
    """
    if not plan.rollup:
        return raw_counts_ctes(db, where.sql, where.gpu)
    rows = rows_sql(db, where, plan, "stack_id, count AS cnt")
    return (
        f"counts AS (SELECT stack_id, sum(cnt) AS n, sum(sum(cnt)) OVER () AS grand FROM {rows} GROUP BY stack_id),\n"
        "stack_ids AS (SELECT stack_id FROM counts)"
    )


def query_params(where: SampleFilter, plan: Plan) -> dict[str, Any]:
    """Every parameter a query built from ``where`` and ``plan`` binds."""
    return {**where.params, **where.gpu.params, **plan.params}

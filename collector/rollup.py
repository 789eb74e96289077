"""Long ranges: the per-minute rollup ``samples_1m`` and which table answers a query.

``samples_1m`` (migration ``003_rollup.sql``) holds one row per (minute,
service, job, host, pid, rank, thread, kind, labels, stack) with the summed
``count``. A materialized view fills it from every insert into ``samples``, so
it is exactly as fresh as the raw table; it is a ``SummingMergeTree`` (rows of
one key are summed when parts merge, readers ``sum()`` anyway) and shares the
raw table's insert deduplication, so a retried batch is counted once in both.
It has its own TTL (``--rollup-ttl-days``, default 90, against 14 days raw).

Which table (:func:`choose`): a query over ``[start, end)`` reads

* **the rollup** for the whole minutes inside the range,
  ``[ceil(start to a minute), floor(end to a minute))``, plus the raw seconds
  of the partial minutes at either edge (``[start, r_from)`` and
  ``[r_to, end)``, empty when both ends are minute-aligned) when:

  - the query needs no per-second GPU classification (``gpu_state=any``;
    ``busy``/``idle``/``none`` are decided per second, and ``/lines`` always
    reports GPU-busy/idle seconds, so both stay on raw seconds),
  - the whole minutes span at least :data:`MIN_ROLLUP_SECONDS`, and
  - the rollup keeps at least as long as the raw table, or the range starts
    inside the rollup's retention;

* **the raw table** ``samples`` otherwise.

Both answer the same counts for the same rows (the rollup only drops the
second and ``tid``, which no selector can name), so the choice never changes
a result while both tables still hold the range; past the raw retention only
the rollup does. The choice is reported as ``source`` in the results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import counts_ctes as raw_counts_ctes

log = logging.getLogger(__name__)

RAW = "samples"
ROLLUP = "samples_1m"
#: The rollup's bucket, seconds.
MINUTE = 60
#: Whole minutes a range must cover before the rollup is read; shorter ranges are cheap on raw seconds.
MIN_ROLLUP_SECONDS = 10 * MINUTE

#: Columns both tables share, the ones a selector can name.
LABEL_COLUMNS = "service, job, host, pid, rank, thread, kind, labels"

_INNER = "ts >= toDateTime({r_from:UInt32}) AND ts < toDateTime({r_to:UInt32})"
_EDGES = (
    "(ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({r_from:UInt32}) "
    "OR ts >= toDateTime({r_to:UInt32}) AND ts < toDateTime({t_to:UInt32}))"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a query reads its samples."""

    #: :data:`RAW` or :data:`ROLLUP` (which then also reads the raw edges).
    source: str
    #: The minute-aligned part of the range read from the rollup, ``[inner_start, inner_end)``.
    inner_start: int = 0
    inner_end: int = 0

    @property
    def rollup(self) -> bool:
        return self.source == ROLLUP

    @property
    def params(self) -> dict[str, Any]:
        """The bound parameters this plan adds (``r_from``, ``r_to``)."""
        return {"r_from": self.inner_start, "r_to": self.inner_end} if self.rollup else {}


RAW_PLAN = Plan(RAW)


def choose(where: SampleFilter, *, enabled: bool = True, rollup_from: int | None = None) -> Plan:
    """The coarsest source that answers ``where`` exactly (see the module docstring).

    ``rollup_from`` is the oldest second the rollup is sure to hold when its
    retention is shorter than the raw table's (``None``: it holds at least as long).
    """
    if not enabled or where.gpu.state != "any":
        return RAW_PLAN
    inner_start = -(-where.start // MINUTE) * MINUTE
    inner_end = where.end // MINUTE * MINUTE
    if inner_end - inner_start < MIN_ROLLUP_SECONDS:
        return RAW_PLAN
    if rollup_from is not None and where.start < rollup_from:
        return RAW_PLAN
    return Plan(ROLLUP, inner_start, inner_end)


def rows_sql(db: str, where: SampleFilter, plan: Plan, columns: str) -> str:
    """A subquery of the selected rows' ``columns`` (any of :data:`LABEL_COLUMNS`, ``ts``, ``stack_id``, ``count``).

    On the rollup, ``ts`` is the minute and the raw edges are ``UNION ALL``-ed in.
    """
    if not plan.rollup:
        return f"(SELECT {columns} FROM {db}.{RAW} WHERE {where.sql})"
    return (
        f"(SELECT {columns} FROM {db}.{ROLLUP} WHERE {_INNER} AND {where.match_sql} "
        f"UNION ALL SELECT {columns} FROM {db}.{RAW} WHERE {_EDGES} AND {where.match_sql})"
    )


def counts_ctes(db: str, where: SampleFilter, plan: Plan) -> str:
    """CTEs ``counts (stack_id, n, grand)`` and ``stack_ids`` for a profile query, from the plan's source.

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

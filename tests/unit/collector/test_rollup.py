"""Which table answers a profile query: raw seconds or the per-minute rollup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import GpuFilter
from flamehouse.collector.rollup import MIN_ROLLUP_SECONDS, RAW, ROLLUP, Plan, choose, counts_ctes, rows_sql

T0 = 1_764_417_600  # a whole minute (2025-11-29T12:00:00Z)


def _where(start: int, end: int, state: str = "any") -> SampleFilter:
    match = "kind = {kind:String} AND (1)"
    sql = f"ts >= toDateTime({{t_from:UInt32}}) AND ts < toDateTime({{t_to:UInt32}}) AND {match}"
    params = {"t_from": start, "t_to": end, "kind": "cpu"}
    return SampleFilter(sql, params, start, end, False, match, "cpu", GpuFilter(state))


def test_aligned_range_reads_the_rollup_only() -> None:
    plan = choose(_where(T0, T0 + 30 * 86400))
    assert plan == Plan(ROLLUP, T0, T0 + 30 * 86400)
    assert plan.params == {"r_from": T0, "r_to": T0 + 30 * 86400}


def test_unaligned_range_reads_whole_minutes_from_the_rollup() -> None:
    plan = choose(_where(T0 - 17, T0 + 3600 + 42))
    assert (plan.source, plan.inner_start, plan.inner_end) == (ROLLUP, T0, T0 + 3600)


@pytest.mark.parametrize(
    ("where", "why"),
    [
        (_where(T0, T0 + MIN_ROLLUP_SECONDS - 60), "too short"),
        (_where(T0 + 1, T0 + MIN_ROLLUP_SECONDS + 59), "whole minutes too short"),
        (_where(T0, T0 + 86400, "idle"), "gpu_state needs seconds"),
        (_where(T0, T0 + 86400, "none"), "gpu_state needs seconds"),
    ],
)
def test_raw_when_the_rollup_cannot_answer(where: SampleFilter, why: str) -> None:
    assert choose(where).source == RAW, why
    assert choose(where).params == {}


def test_disabled_or_older_than_the_rollup_keeps() -> None:
    where = _where(T0, T0 + 86400)
    assert choose(where, enabled=False).source == RAW
    assert choose(where, rollup_from=T0 + 1).source == RAW
    assert choose(where, rollup_from=T0).source == ROLLUP


@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_rollup_and_edges_cover_the_range_exactly(offset: int, span: int) -> None:
    start = T0 + offset
    plan = choose(_where(start, start + span))
    if plan.source == ROLLUP:
        assert start <= plan.inner_start < plan.inner_end <= start + span
        assert plan.inner_start % 60 == 0 and plan.inner_end % 60 == 0
        assert plan.inner_start - start < 60 and start + span - plan.inner_end < 60  # edges under a minute


def test_sql_reads_the_chosen_tables() -> None:
    where = _where(T0, T0 + 86400)
    rollup_sql = counts_ctes("db", where, choose(where))
    assert "db.samples_1m WHERE ts >= toDateTime({r_from:UInt32})" in rollup_sql
    assert "UNION ALL SELECT stack_id, count AS cnt FROM db.samples WHERE (ts >= toDateTime({t_from" in rollup_sql
    raw_sql = counts_ctes("db", where, choose(where, enabled=False))
    assert "samples_1m" not in raw_sql
    assert rows_sql("db", where, choose(where, enabled=False), "host") == f"(SELECT host FROM db.samples WHERE {where.sql})"

"""Which tables answer a profile query: raw seconds, the per-minute or the per-hour rollup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.gpu_state import GpuFilter
from flamehouse.collector.rollup import (
    HOURS,
    MIN_HOURS,
    MIN_ROLLUP_SECONDS,
    MINUTES,
    RAW,
    Plan,
    choose,
    counts_ctes,
    rows_sql,
)

T0 = 1_764_417_600  # a whole hour (2025-11-29T12:00:00Z)
DAY = 86400


def _where(start: int, end: int, state: str = "any") -> SampleFilter:
    match = "kind = {kind:String} AND (1)"
    sql = f"ts >= toDateTime({{t_from:UInt32}}) AND ts < toDateTime({{t_to:UInt32}}) AND {match}"
    params = {"t_from": start, "t_to": end, "kind": "cpu"}
    return SampleFilter(sql, params, start, end, False, match, "cpu", GpuFilter(state))


def test_aligned_month_reads_hours_only() -> None:
    plan = choose(_where(T0, T0 + 30 * DAY))
    assert plan == Plan(HOURS, T0, T0 + 30 * DAY, T0, T0 + 30 * DAY)
    assert plan.params == {"r_from": T0, "r_to": T0 + 30 * DAY, "h_from": T0, "h_to": T0 + 30 * DAY}


def test_unaligned_day_reads_hours_then_minutes_then_seconds() -> None:
    plan = choose(_where(T0 - 1800 - 17, T0 + DAY + 600 + 42))
    assert plan == Plan(HOURS, T0 - 1800, T0 + DAY + 600, T0, T0 + DAY)


def test_a_few_hours_read_hours() -> None:
    plan = choose(_where(T0 - 17, T0 + 3 * 3600 + 42))
    assert plan == Plan(HOURS, T0, T0 + 3 * 3600, T0, T0 + 3 * 3600)


def test_one_whole_hour_reads_it_from_the_hourly_rollup() -> None:
    start, end = T0 - 59 * 60 - 1, T0 + 3600 + 59 * 60 + 1  # 2 h minus a second each side, one whole hour
    plan = choose(_where(start, end))
    assert plan == Plan(HOURS, T0 - 59 * 60, T0 + 3600 + 59 * 60, T0, T0 + 3600)


@pytest.mark.parametrize(
    ("start", "end"),
    [(T0 - 1800, T0 + 1800), (T0 + 1, T0 + 3600), (T0, T0 + 3599), (T0 - 1, T0 + 3600 - 1)],
)
def test_less_than_a_whole_hour_reads_minutes(start: int, end: int) -> None:
    plan = choose(_where(start, end))
    assert plan.source == MINUTES
    assert plan.h_from == plan.h_to == plan.r_to


@pytest.mark.parametrize(
    ("where", "why"),
    [
        (_where(T0, T0 + MIN_ROLLUP_SECONDS - 60), "too short"),
        (_where(T0 + 1, T0 + MIN_ROLLUP_SECONDS + 59), "whole minutes too short"),
        (_where(T0, T0 + DAY, "idle"), "gpu_state needs seconds"),
        (_where(T0, T0 + DAY, "none"), "gpu_state needs seconds"),
    ],
)
def test_raw_when_no_rollup_can_answer(where: SampleFilter, why: str) -> None:
    assert choose(where).source == RAW, why
    assert choose(where).params == {}


def test_disabled_or_older_than_the_rollups_keep() -> None:
    where = _where(T0, T0 + DAY)
    assert choose(where, enabled=False).source == RAW
    assert choose(where, rollup_from=T0 + 1).source == RAW
    assert choose(where, rollup_from=T0).source == HOURS


@given(st.integers(0, 10**7), st.integers(1, 10**7))
def test_tiers_cover_the_range_exactly(offset: int, span: int) -> None:
    start, end = T0 + offset, T0 + offset + span
    plan = choose(_where(start, end))
    if plan.source == RAW:
        return
    # seconds [start, r_from) + minutes [r_from, h_from) + hours [h_from, h_to) + minutes [h_to, r_to) + seconds
    assert start <= plan.r_from <= plan.h_from <= plan.h_to <= plan.r_to <= end
    assert plan.r_from % 60 == plan.r_to % 60 == 0 and plan.r_from - start < 60 and end - plan.r_to < 60
    if plan.source == HOURS:
        assert plan.h_from % 3600 == plan.h_to % 3600 == 0 and plan.h_to - plan.h_from >= MIN_HOURS * 3600
        assert plan.h_from - plan.r_from < 3600 and plan.r_to - plan.h_to < 3600
    else:
        assert plan.h_from == plan.h_to == plan.r_to


def test_sql_reads_the_chosen_tables() -> None:
    where = _where(T0, T0 + 30 * DAY)
    sql = counts_ctes("db", where, choose(where))
    assert "FROM db.samples_1h WHERE ts >= toDateTime({h_from:UInt32}) AND ts < toDateTime({h_to:UInt32})" in sql
    assert "FROM db.samples_1m WHERE (ts >= toDateTime({r_from:UInt32}) AND ts < toDateTime({h_from:UInt32})" in sql
    assert "FROM db.samples WHERE (ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({r_from:UInt32})" in sql
    short = _where(T0, T0 + 3599)
    assert "samples_1h" not in counts_ctes("db", short, choose(short))
    raw = choose(where, enabled=False)
    assert "samples_1" not in counts_ctes("db", where, raw)
    assert rows_sql("db", where, raw, "host") == f"(SELECT host FROM db.samples WHERE {where.sql})"

"""Parsing of ``from``/``to`` times and ranges."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamehouse.collector import QueryError
from flamehouse.collector.timespec import MAX_SPAN_SECONDS, parse_time, resolve_range

NOW = 1_795_000_000.5  # 2026-11-18T09:06:40.5Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        (" now ", NOW),
        ("now-30s", NOW - 30),
        ("now-15m", NOW - 900),
        ("now - 1h", NOW - 3600),
        ("now-7d", NOW - 7 * 86400),
        ("now-2w", NOW - 14 * 86400),
        ("1764417600", 1764417600.0),
        ("1764417600.25", 1764417600.25),
        ("2025-11-29T12:00:00Z", 1764417600.0),
        ("2025-11-29t12:00:00z", 1764417600.0),
        ("2025-11-29 12:00:00Z", 1764417600.0),
        ("2025-11-29T14:00:00+02:00", 1764417600.0),
        ("2025-11-29T07:30:00-04:30", 1764417600.0),
        ("2025-11-29T12:00:00.5Z", 1764417600.5),
        ("2025-11-29T12:00:00.123456789Z", 1764417600.123456789),
    ],
)
def test_accepted_forms(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "now-", "now-15", "now-15y", "now+1h", "-5", "1e9", "2025-13-01T00:00:00Z", "2025-11-29", "nan"],
)
def test_rejected_forms_list_the_accepted_ones(text: str) -> None:
    with pytest.raises(QueryError, match=r"RFC 3339.*unix seconds.*now-15m"):
        parse_time(text, NOW)


def test_missing_offset_says_how_to_fix() -> None:
    with pytest.raises(QueryError, match=r"no UTC offset: add Z or \+hh:mm"):
        parse_time("2025-11-29T12:00:00", NOW)


def test_range_defaults_to_last_hour() -> None:
    assert resolve_range(None, None, NOW) == (int(NOW) - 3600, int(NOW) + 1)
    assert resolve_range("", " ", NOW, default_span=60) == (int(NOW) - 60, int(NOW) + 1)


def test_default_from_is_relative_to_to() -> None:
    assert resolve_range(None, "1764417600", NOW) == (1764417600 - 3600, 1764417600)


def test_range_rounds_outwards() -> None:
    assert resolve_range("100.7", "200.2", NOW) == (100, 201)


@pytest.mark.parametrize(("from_", "to"), [("now", "now-1h"), ("now", "now"), ("200", "100")])
def test_from_must_be_before_to(from_: str, to: str) -> None:
    with pytest.raises(QueryError, match="'from' must be before 'to'"):
        resolve_range(from_, to, NOW)


def test_span_is_bounded() -> None:
    assert resolve_range("now-400d", None, NOW)[0] == int(NOW - MAX_SPAN_SECONDS)
    with pytest.raises(QueryError, match="at most 400 days"):
        resolve_range("now-401d", None, NOW)


def test_range_must_fit_datetime() -> None:
    with pytest.raises(QueryError, match="between 1970"):
        resolve_range("now-1h", None, 1000.0)
    with pytest.raises(QueryError, match="between 1970"):
        resolve_range("5000000000", "5000000010", NOW)


@given(st.text(max_size=40))
def test_random_text_raises_only_query_error(text: str) -> None:
    with contextlib.suppress(QueryError):
        resolve_range(text, None, NOW)

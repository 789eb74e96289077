"""Columns are sent without LowCardinality: the engine converts them faster than Python builds dictionaries."""

from __future__ import annotations

import pytest
from clickhouse_connect.datatypes.registry import get_from_name

from flamehouse.collector.store import _wire_type


@pytest.mark.parametrize(
    ("table_type", "sent_as"),
    [
        ("LowCardinality(String)", "String"),
        ("Map(LowCardinality(String), String)", "Map(String, String)"),
        ("LowCardinality(Nullable(String))", "Nullable(String)"),
        ("Array(LowCardinality(String))", "Array(String)"),
        ("UInt64", "UInt64"),
        ("Enum8('cpu' = 1, 'wall' = 2)", "Enum8('cpu' = 1, 'wall' = 2)"),
    ],
)
def test_low_cardinality_is_sent_as_its_plain_type(table_type: str, sent_as: str) -> None:
    assert _wire_type(get_from_name(table_type)).name == sent_as

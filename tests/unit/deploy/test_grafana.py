"""The Grafana dashboard: ClickHouse data source panels whose SQL runs against the real schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboard.json"


def targets() -> list[dict[str, Any]]:
    dash = json.loads(DASHBOARD.read_text())
    return [t for p in dash["panels"] for t in p["targets"]]


def test_dashboard_uses_the_clickhouse_data_source_and_has_the_panels() -> None:
    dash = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dash["panels"])
    assert "GPU SM utilisation per job" in titles and "Top functions" in titles
    for t in targets():
        assert t["datasource"]["type"] == "grafana-clickhouse-datasource"
        assert t["rawSql"].strip()


def expand_macros(sql: str) -> str:
    """Grafana ClickHouse plugin macros as the plugin expands them, for a 1 h range and 60 s step."""
    sql = re.sub(r"\$__timeFilter\((\w+(?:\.\w+)?)\)", r"(\1 >= now() - 3600 AND \1 <= now())", sql)
    return re.sub(r"\$__timeInterval\((\w+(?:\.\w+)?)\)", r"toStartOfInterval(\1, INTERVAL 60 second)", sql)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(StoreConfig(dsn=embedded_dsn(tmp_path_factory.mktemp("grafana"))))
    migrate(s)
    yield s
    s.close()


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(targets())))
def test_panel_sql_runs_against_the_schema(store: Store, index: int) -> None:
    store.query(expand_macros(targets()[index]["rawSql"]))

"""Cluster DDL: every migration statement's ON CLUSTER form must parse in ClickHouse itself.

The cluster statements cannot run without a cluster (Keeper, macros), so they are checked by
ClickHouse's own parser through ``formatQuery`` in chDB; the single-node statements from the same
files are executed by ``migrate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flamehouse.collector.cluster import ClusterError, cluster_statements
from flamehouse.collector.schema import SCHEMA_MIGRATIONS_TABLE, load_migrations, migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn

pytestmark = pytest.mark.integration

CLUSTER = "fh_cluster"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(StoreConfig(dsn=embedded_dsn(tmp_path_factory.mktemp("cluster")), database="fhc"))
    yield s
    s.close()


def substitute(statement: str) -> str:
    return statement.replace("{db}", "fhc").replace("{ttl_days}", "14").replace("{rollup_ttl_days}", "90")


def formatted(store: Store, sql: str) -> str:
    """ClickHouse's canonical text of ``sql``; raises StoreError when it does not parse."""
    return str(store.query("SELECT formatQuery({q:String})", {"q": sql})[0][0])


def every_statement() -> list[str]:
    return [
        "CREATE DATABASE IF NOT EXISTS {db}",
        SCHEMA_MIGRATIONS_TABLE,
        *(s for m in load_migrations() for s in m.statements),
    ]


def test_single_node_ddl_executes(store: Store) -> None:
    applied = migrate(store)
    assert applied == [m.version for m in load_migrations()]
    assert migrate(store) == []  # idempotent


@pytest.mark.parametrize("statement", every_statement(), ids=lambda s: " ".join(s.split())[:60])
def test_every_migration_statement_has_a_cluster_form_clickhouse_parses(store: Store, statement: str) -> None:
    out = cluster_statements(statement, CLUSTER)
    assert out
    for sql in out:
        text = formatted(store, substitute(sql))
        if text.startswith("INSERT INTO"):  # backfills run through the Distributed tables as written
            assert out == [statement]
        else:
            assert f"ON CLUSTER {CLUSTER}" in text


def created_tables() -> list[str]:
    names = []
    for statement in every_statement():
        words = statement.split()
        if words[:2] == ["CREATE", "TABLE"]:
            names.append(words[5].split(".")[1] if words[2] == "IF" else words[2].split(".")[1])
    return names


@pytest.mark.parametrize("table", created_tables())
def test_tables_become_replicated_local_plus_distributed(store: Store, table: str) -> None:
    statement = next(s for s in every_statement() if f"{{db}}.{table}\n" in s or f"{{db}}.{table} " in s)
    local, dist = (formatted(store, substitute(s)) for s in cluster_statements(statement, CLUSTER))
    assert f"fhc.{table}_local ON CLUSTER" in local
    assert "ENGINE = Replicated" in local
    assert "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in local
    assert "non_replicated_deduplication_window" not in local
    assert f"fhc.{table} ON CLUSTER {CLUSTER} AS fhc.{table}_local" in dist
    assert f"ENGINE = Distributed({CLUSTER}, fhc, {table}_local" in dist


def test_engine_arguments_are_kept_after_the_replication_ones(store: Store) -> None:
    stacks = next(s for m in load_migrations() for s in m.statements if "{db}.stacks\n" in s)
    local = formatted(store, substitute(cluster_statements(stacks, CLUSTER)[0]))
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', last_seen)" in local
    )
    summing = (
        "CREATE TABLE IF NOT EXISTS {db}.rollup (ts DateTime, service String, n UInt64, m UInt64)\n"
        "ENGINE = SummingMergeTree((n, m))\nORDER BY (service, ts)"
    )
    local = formatted(store, substitute(cluster_statements(summing, CLUSTER)[0]))
    assert "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', (n, m))" in local


def test_samples_are_sharded_so_one_job_stays_together(store: Store) -> None:
    samples = next(s for m in load_migrations() for s in m.statements if "{db}.samples\n" in s)
    dist = formatted(store, substitute(cluster_statements(samples, CLUSTER)[1]))
    assert "Distributed(fh_cluster, fhc, samples_local, cityHash64(service, job, host))" in dist


def test_materialized_view_reads_and_writes_local_tables(store: Store) -> None:
    view = (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.samples_1m_mv TO {db}.samples_1m AS\n"
        "SELECT toStartOfMinute(ts) AS ts, service, stack_id, sum(count) AS count\n"
        "FROM {db}.samples GROUP BY ts, service, stack_id"
    )
    (sql,) = cluster_statements(view, CLUSTER)
    text = formatted(store, substitute(sql))
    assert f"fhc.samples_1m_mv ON CLUSTER {CLUSTER} TO fhc.samples_1m_local" in text
    assert "FROM fhc.samples_local" in text


def test_alter_and_drop_reach_both_tables(store: Store) -> None:
    alter = cluster_statements("ALTER TABLE {db}.samples ADD COLUMN IF NOT EXISTS step UInt32", CLUSTER)
    assert [formatted(store, substitute(s)).split("\n")[0] for s in alter] == [
        f"ALTER TABLE fhc.samples_local ON CLUSTER {CLUSTER}",
        f"ALTER TABLE fhc.samples ON CLUSTER {CLUSTER}",
    ]
    ttl = cluster_statements("ALTER TABLE {db}.samples MODIFY TTL ts + toIntervalDay(3)", CLUSTER)
    assert len(ttl) == 1 and "samples_local" in ttl[0]
    drop = cluster_statements("DROP TABLE IF EXISTS {db}.old", CLUSTER)
    for s in drop:
        formatted(store, substitute(s))
    assert len(drop) == 2


def test_unknown_statements_and_bad_names_are_refused() -> None:
    with pytest.raises(ClusterError, match="teach"):
        cluster_statements("INSERT INTO {db}.samples VALUES (1)", CLUSTER)
    with pytest.raises(ClusterError, match="cluster name"):
        cluster_statements(SCHEMA_MIGRATIONS_TABLE, "bad name; DROP")
    with pytest.raises(ClusterError, match="MergeTree"):
        cluster_statements("CREATE TABLE {db}.t (a UInt8) ENGINE = Memory", CLUSTER)


def test_migrate_with_a_cluster_sends_the_cluster_form(tmp_path: Path) -> None:
    sent: list[str] = []

    class Recorder:
        db = "fhc"

        class config:
            ttl_days = 7
            rollup_ttl_days = 90

        def command(self, sql: str) -> None:
            sent.append(sql)

        def query(self, sql: str) -> list[tuple[int]]:
            return []

        def insert(self, *args: object) -> None:
            pass

    migrate(Recorder(), cluster=CLUSTER)  # type: ignore[arg-type]
    assert sent[0] == f"CREATE DATABASE IF NOT EXISTS fhc ON CLUSTER {CLUSTER}"
    assert all(f"ON CLUSTER {CLUSTER}" in s for s in sent if not s.startswith("INSERT"))
    assert any("TO fhc.samples_1m_local" in s for s in sent)
    assert any("fhc.samples_local" in s and "toIntervalDay(7)" in s for s in sent)

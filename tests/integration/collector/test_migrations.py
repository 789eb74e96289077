"""Schema upgrades of a store that already holds data: nothing is lost, selectors keep working."""

from __future__ import annotations

import time

from flamehouse.collector.ingest import Ingestor
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store
from tests.builders import Sample, make_batch

FRAMES = [("main", "train.py", 1), ("step", "train.py", 9)]


def _batch(batch_id: str, ts: int) -> object:
    return make_batch(
        [Sample(ts, 7, 7, "MainThread", FRAMES, "cpu", 3), Sample(ts + 1, 8, 8, "MainThread", FRAMES, "cpu", 5)],
        batch_id=batch_id,
        processes={7: {"service": "svc", "team": "vision"}, 8: {"service": "svc", "team": "speech"}},
    )


def _labels_type(store: Store) -> str:
    rows = store.query(
        "SELECT type FROM system.columns WHERE database = {db:String} AND table = 'samples' AND name = 'labels'",
        {"db": store.db},
    )
    return str(rows[0][0])


def test_005_gives_samples_plain_label_keys_and_keeps_stored_labels(store: Store) -> None:
    """A store at version 4 (labels keyed by LowCardinality) upgrades in place; its rows keep their labels."""
    db = store.db
    store.command(f"ALTER TABLE {db}.samples MODIFY COLUMN labels Map(LowCardinality(String), String)")
    store.command(f"ALTER TABLE {db}.schema_migrations DELETE WHERE version = 5 SETTINGS mutations_sync = 2")
    assert _labels_type(store) == "Map(LowCardinality(String), String)"
    now = int(time.time()) - 60
    Ingestor(store).push(_batch("before", now))  # type: ignore[arg-type]

    assert migrate(store) == [5]
    assert _labels_type(store) == "Map(String, String)"
    assert migrate(store) == []  # applied once
    Ingestor(store).push(_batch("after", now + 10))  # type: ignore[arg-type]

    stored = store.query(f"SELECT batch_id, labels['team'], sum(count) FROM {db}.samples GROUP BY 1, 2 ORDER BY 1, 2")
    assert stored == [("after", "speech", 5), ("after", "vision", 3), ("before", "speech", 5), ("before", "vision", 3)]
    queries = QueryService(store, rollup=False)
    assert queries.top('{team="vision"}', str(now - 5), str(now + 20)).total_samples == 6
    assert queries.top('{team!="vision"}', str(now - 5), str(now + 20)).total_samples == 10
    rollup = store.query(f"SELECT labels['team'], sum(count) FROM {db}.samples_1m GROUP BY 1 ORDER BY 1")
    assert rollup == [("speech", 10), ("vision", 6)]  # the per-minute view still converts the map

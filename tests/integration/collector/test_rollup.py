"""Long ranges: the per-minute rollup ``samples_1m`` against raw seconds, in a real chDB.

A month of one job is generated inside ClickHouse (``INSERT ... SELECT FROM
numbers()`` into ``samples``; the materialized view fills ``samples_1m``): 12
rows a minute over 30 days. One database keeps raw rows 40 days, so both
tables hold the whole month and every answer can be compared; another keeps
the defaults (raw 14 days, rollup 90), where only the rollup can answer the
month. Timestamps end an hour before the real clock because TTLs are relative
to it. Timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector.ingest import Ingestor
from flamehouse.collector.query import FlameNode, QueryService
from flamehouse.collector.rollup import RAW, ROLLUP
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.collector.upkeep import apply_retention, backfill_rollup
from flamehouse.proto import ids
from tests.builders import Sample, make_batch

pytestmark = pytest.mark.integration

DAYS = 30
ROWS_PER_MINUTE = 12
END = int(time.time()) // 60 * 60 - 3600  # a whole minute, an hour ago
START = END - DAYS * 86400
STACKS: list[list[tuple[str, str, int]]] = [
    [("main", "train.py", 1), ("step", "train.py", 10), ("forward", "model.py", 20)],
    [("main", "train.py", 1), ("step", "train.py", 10), ("backward", "model.py", 40)],
    [("main", "train.py", 1), ("step", "train.py", 11), ("optimizer", "optim.py", 5)],
    [("main", "train.py", 1), ("load", "data.py", 7)],
    [("main", "train.py", 1), ("load", "data.py", 7), ("decode", "data.py", 30)],
    [("main", "train.py", 1), ("log", "train.py", 90)],
]


def _write_stacks(store: Store) -> list[int]:
    frames = {ids.frame_id(*f): f for stack in STACKS for f in stack}
    today = date.today()
    store.insert(
        "frames",
        ["frame_id", "function_id", "function", "file", "line", "last_seen"],
        [list(frames), [ids.function_id(f[0], f[1]) for f in frames.values()], [f[0] for f in frames.values()],
         [f[1] for f in frames.values()], [f[2] for f in frames.values()], [today] * len(frames)],
    )  # fmt: skip
    stack_ids, frame_ids, function_ids = [], [], []
    for stack in STACKS:
        fids = [ids.frame_id(*f) for f in stack]
        stack_ids.append(ids.stack_id(fids))
        frame_ids.append(fids)
        function_ids.append([ids.function_id(f[0], f[1]) for f in stack])
    store.insert(
        "stacks", ["stack_id", "frame_ids", "function_ids", "last_seen"],
        [stack_ids, frame_ids, function_ids, [today] * len(stack_ids)],
    )  # fmt: skip
    return stack_ids


def seed_month(store: Store, start: int = START, days: int = DAYS) -> int:
    """Writes ``days`` of the job from ``start``; returns the samples written.

    Row ``i``: minute ``i // 12``, second ``(i % 12) * 5`` of it, host ``gpu-0``/``gpu-1`` (rank 0/1),
    thread ``MainThread``/``loader``, a stack drawn from the six by a hash, count 1 to 4; every
    seventh row is ``kind=wall``.
    """
    pool = "[" + ",".join(map(str, _write_stacks(store))) + "]"
    rows = days * 1440 * ROWS_PER_MINUTE
    store.command(f"""
INSERT INTO {store.db}.samples (ts, service, job, host, pid, rank, thread, tid, kind, labels, stack_id, count, batch_id)
WITH {pool} AS pool
SELECT toDateTime({start} + intDiv(number, {ROWS_PER_MINUTE}) * 60 + (number % {ROWS_PER_MINUTE}) * 5),
       'trainer', 'j30', concat('gpu-', toString(number % 2)), toUInt32(100 + number % 2), toString(number % 2),
       if(number % 3 = 0, 'loader', 'MainThread'), toUInt64(number % 3), if(number % 7 = 0, 'wall', 'cpu'),
       map('team', 'ml'), pool[1 + cityHash64(number) % 6], toUInt32(1 + number % 4), 'month'
FROM numbers({rows})
""")
    return int(store.query(f"SELECT sum(1 + number % 4) FROM numbers({rows})")[0][0])


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryService, QueryService, Store]]:
    """(rollup-enabled queries, raw-only queries, store) over a database that keeps raw rows 40 days."""
    path: Path = tmp_path_factory.mktemp("rollup")
    store = Store(StoreConfig(dsn=embedded_dsn(path), database="month", ttl_days=40))
    try:
        migrate(store)
        seed_month(store)
        yield QueryService(store), QueryService(store, rollup=False), store
    finally:
        store.close()


def _shape(node: FlameNode) -> tuple[Any, ...]:
    return (node.name, node.file, node.line, node.self_samples, node.total_samples, [_shape(c) for c in node.children])


def _timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - started) * 1e3


def test_month_reads_the_rollup_and_matches_raw(month: tuple[QueryService, QueryService, Store]) -> None:
    rollup, raw, store = month
    span = (str(START), str(END))
    top, top_ms = _timed(lambda: rollup.top('{service="trainer"}', *span, limit=50))
    top_raw, top_raw_ms = _timed(lambda: raw.top('{service="trainer"}', *span, limit=50))
    assert (top.source, top_raw.source) == (ROLLUP, RAW)
    assert (top.total_samples, top.functions) == (top_raw.total_samples, top_raw.functions)
    raw_rows = store.query("SELECT sum(count) FROM month.samples WHERE kind = 'cpu'")[0][0]
    assert top.total_samples == raw_rows > 0
    flame, flame_ms = _timed(lambda: rollup.flamegraph('{service="trainer"}', *span))
    flame_raw, flame_raw_ms = _timed(lambda: raw.flamegraph('{service="trainer"}', *span))
    assert flame.source == ROLLUP and _shape(flame.root) == _shape(flame_raw.root)
    hour = (str(END - 3600), str(END))
    _, hour_top_ms = _timed(lambda: raw.top('{service="trainer"}', *hour, limit=50))
    _, hour_flame_ms = _timed(lambda: raw.flamegraph('{service="trainer"}', *hour))
    minutes, seconds = (store.query(f"SELECT count() FROM month.{t}")[0][0] for t in (ROLLUP, RAW))
    print(
        f"\n[rollup] {seconds} raw rows, {minutes} rollup rows; top: 1 h raw {hour_top_ms:.1f} ms, "
        f"30 d rollup {top_ms:.1f} ms, 30 d raw {top_raw_ms:.1f} ms; flamegraph: 1 h raw {hour_flame_ms:.1f} ms, "
        f"30 d rollup {flame_ms:.1f} ms, 30 d raw {flame_raw_ms:.1f} ms"
    )


@pytest.mark.parametrize(
    ("selector", "kwargs"),
    [
        ("", {}),
        ('{host=~"gpu-1"}', {}),
        ('{thread!="loader", rank="0"}', {}),
        ('{team="ml", kind="wall"}', {}),
        ("{}", {"kind": "wall"}),
        ('{pid="100"}', {"gpu_state": "any"}),
    ],
)
@pytest.mark.parametrize(
    ("start", "end"),
    [(START, END), (START + 17, END - 23), (START + 86400 + 59, START + 3 * 86400 + 1), (END - 3 * 3600 - 1, END)],
)
def test_rollup_with_raw_edges_equals_raw(
    month: tuple[QueryService, QueryService, Store], selector: str, kwargs: dict[str, str], start: int, end: int
) -> None:
    rollup, raw, _ = month
    got = rollup.top(selector, str(start), str(end), **kwargs)
    want = raw.top(selector, str(start), str(end), **kwargs)
    assert got.source == ROLLUP
    assert (got.total_samples, got.functions) == (want.total_samples, want.functions)
    by_line = rollup.flamegraph(selector, str(start), str(end), by="line", **kwargs)
    assert _shape(by_line.root) == _shape(raw.flamegraph(selector, str(start), str(end), by="line", **kwargs).root)


def test_labels_and_diff_over_the_month(month: tuple[QueryService, QueryService, Store]) -> None:
    rollup, raw, _ = month
    span = (str(START), str(END))
    assert rollup.labels(*span) == raw.labels(*span) == ["host", "job", "kind", "pid", "rank", "service", "team", "thread"]
    assert rollup.label_values("host", "", *span) == raw.label_values("host", "", *span) == ["gpu-0", "gpu-1"]
    week = (str(END - 7 * 86400), str(END))
    diff = rollup.diff('{rank="0"}', span, '{rank="0"}', week)
    assert diff.sources == (ROLLUP, ROLLUP)
    assert diff.to_json() == raw.diff('{rank="0"}', span, '{rank="0"}', week).to_json() | {
        "source": {"base": ROLLUP, "comparison": ROLLUP}
    }


def test_gpu_state_and_short_ranges_read_raw(month: tuple[QueryService, QueryService, Store]) -> None:
    rollup, _, _ = month
    assert rollup.top("", str(END - 86400), str(END), gpu_state="none").source == RAW
    assert rollup.top('{gpu_state="none"}', str(END - 86400), str(END)).source == RAW
    assert rollup.top("", str(END - 300), str(END)).source == RAW


@pytest.fixture(scope="module")
def defaults(month: tuple[QueryService, QueryService, Store]) -> Iterator[Store]:
    """A database with the default retention (raw 14 days, rollup 90), in the same chDB as ``month``."""
    store = Store(StoreConfig(dsn=month[2].config.dsn, database="defaults"))
    try:
        migrate(store)
        yield store
    finally:
        store.close()


def test_rollup_keeps_the_month_raw_cannot(defaults: Store) -> None:
    written = seed_month(defaults)
    old = seed_month(defaults, start=END - 100 * 86400, days=1)  # past even the rollup's retention
    for table in (RAW, ROLLUP):
        defaults.command(f"OPTIMIZE TABLE defaults.{table} FINAL")  # applies the TTLs now
    oldest_raw = defaults.query("SELECT min(ts) FROM defaults.samples")[0][0].replace(tzinfo=UTC)
    assert oldest_raw.timestamp() >= END - 14 * 86400 - 86400  # TTL drops whole days past 14
    queries = QueryService(defaults)
    month_top = queries.top("", str(START), str(END), kind="cpu")
    cpu_share = defaults.query(
        f"SELECT sum(1 + number % 4) FROM numbers({DAYS * 1440 * ROWS_PER_MINUTE}) WHERE number % 7 != 0"
    )[0][0]
    assert month_top.source == ROLLUP and month_top.total_samples == cpu_share < written
    assert QueryService(defaults, rollup=False).top("", str(START), str(END)).total_samples < cpu_share
    assert old > 0 and queries.top("", str(END - 101 * 86400), str(END - 99 * 86400)).total_samples == 0


def test_retried_batch_counts_once_in_the_rollup(defaults: Store) -> None:
    store = Store(StoreConfig(dsn=defaults.config.dsn, database="retry"))  # chDB: one data path per process
    try:
        migrate(store)
        now = int(time.time()) - 120
        frames = [("main", "a.py", 1), ("work", "a.py", 2)]
        batch = make_batch(
            [Sample(now, 7, 7, "MainThread", frames, "cpu", 5), Sample(now + 1, 7, 7, "MainThread", frames, "cpu", 2)],
            batch_id="retry-me",
            processes={7: {"service": "svc"}},
        )
        for _ in range(2):  # a fresh collector each time: only the store's deduplication stops the second
            Ingestor(store).push(batch)
        raw, minute = (store.query(f"SELECT sum(count) FROM retry.{t}")[0][0] for t in (RAW, ROLLUP))
        assert raw == minute == 7
    finally:
        store.close()


def test_upgrade_backfills_the_rollup_once_and_retention_follows_the_config(defaults: Store) -> None:
    dsn = defaults.config.dsn
    store = Store(StoreConfig(dsn=dsn, database="upgrade"))
    try:
        migrate(store)
        seed_month(store, start=END - 2 * 86400, days=2)
        store.command("TRUNCATE TABLE upgrade.samples_1m")  # as if the rows predated migration 003
        assert backfill_rollup(store) > 0
        assert backfill_rollup(store) == 0  # not empty any more: nothing copied twice
        raw, minute = (store.query(f"SELECT sum(count) FROM upgrade.{t}")[0][0] for t in (RAW, ROLLUP))
        assert raw == minute > 0
    finally:
        store.close()
    store = Store(StoreConfig(dsn=dsn, database="upgrade", ttl_days=7, rollup_ttl_days=365))
    try:
        changed = apply_retention(store)
        assert changed == {"samples": 7, "processes": 7, "gpu_devices": 7, "gpu_processes": 7, ROLLUP: 365}
        assert apply_retention(store) == {}
        engine = store.query("SELECT engine_full FROM system.tables WHERE database = 'upgrade' AND name = 'samples_1m'")
        assert "toIntervalDay(365)" in engine[0][0]
    finally:
        store.close()


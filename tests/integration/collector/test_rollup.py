"""Long ranges: the per-minute and per-hour rollups against raw seconds, in a real chDB.

A month of one job is generated inside ClickHouse (``INSERT ... SELECT FROM
numbers()`` into ``samples``; the materialized views fill ``samples_1m`` and
``samples_1h``): 6 rows a minute over 30 days. One database keeps raw rows 40 days, so both
tables hold the whole month and every answer can be compared; another keeps
the defaults (raw 14 days, rollup 90), where only the rollup can answer the
month. Timestamps end an hour before the real clock because TTLs are relative
to it. Timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector.ingest import Ingestor
from flamehouse.collector.query import FlameNode, QueryService
from flamehouse.collector.rollup import HOURS, MINUTES, RAW
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.collector.upkeep import apply_retention, backfill_rollup
from flamehouse.proto import ids
from tests.builders import Sample, make_batch

pytestmark = pytest.mark.integration

DAYS = 30
ROWS_PER_MINUTE = 6
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


def seed_month(store: Store, start: int = START, days: int = DAYS, per_minute: int = ROWS_PER_MINUTE) -> int:
    """Writes ``days`` of the job from ``start``; returns the samples written.

    Row ``i`` of minute ``m = i // per_minute`` is process ``k = i % 2`` (host ``gpu-k``, rank
    ``k``, thread ``MainThread`` or ``loader``) at second ``(i % per_minute) * 60 // per_minute``,
    on stack ``(7m + k) % 6``, count 1 to 4; every seventh minute is ``kind=wall``. So a minute
    holds 2 rollup rows, and the six stacks all appear every few minutes.
    """
    pool = "[" + ",".join(map(str, _write_stacks(store))) + "]"
    rows = days * 1440 * per_minute
    store.command(f"""
INSERT INTO {store.db}.samples (ts, service, job, host, pid, rank, thread, tid, kind, labels, stack_id, count, batch_id)
WITH {pool} AS pool, intDiv(number, {per_minute}) AS m, number % 2 AS k
SELECT toDateTime({start} + m * 60 + intDiv((number % {per_minute}) * 60, {per_minute})),
       'trainer', 'j30', concat('gpu-', toString(k)), toUInt32(100 + k), toString(k),
       if(k = 1, 'loader', 'MainThread'), toUInt64(k), if(m % 7 = 0, 'wall', 'cpu'),
       map('team', 'ml'), pool[1 + (m * 7 + k) % 6], toUInt32(1 + number % 4), 'month'
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


def _timed(call: Any, runs: int = 5) -> tuple[Any, float]:
    """``call()``'s result and its median time in milliseconds over ``runs`` runs (after one warm-up)."""
    result = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return result, sorted(times)[runs // 2]


def test_month_reads_the_rollup_and_matches_raw(month: tuple[QueryService, QueryService, Store]) -> None:
    rollup, raw, store = month
    span = (str(START), str(END))
    top, top_ms = _timed(lambda: rollup.top('{service="trainer"}', *span, limit=50))
    top_raw, top_raw_ms = _timed(lambda: raw.top('{service="trainer"}', *span, limit=50))
    assert (top.source, top_raw.source) == (HOURS, RAW)
    assert (top.total_samples, top.functions) == (top_raw.total_samples, top_raw.functions)
    raw_cpu = store.query("SELECT sum(count) FROM month.samples WHERE kind = 'cpu'")[0][0]
    assert top.total_samples == raw_cpu > 0
    flame, flame_ms = _timed(lambda: rollup.flamegraph('{service="trainer"}', *span))
    flame_raw, flame_raw_ms = _timed(lambda: raw.flamegraph('{service="trainer"}', *span))
    assert flame.source == HOURS and _shape(flame.root) == _shape(flame_raw.root)
    hour = (str(END - 3600), str(END))
    _, hour_top_ms = _timed(lambda: raw.top('{service="trainer"}', *hour, limit=50))
    _, hour_flame_ms = _timed(lambda: raw.flamegraph('{service="trainer"}', *hour))
    hours, minutes, seconds = (store.query(f"SELECT count() FROM month.{t}")[0][0] for t in (HOURS, MINUTES, RAW))
    print(
        f"\n[rollup] rows: {seconds} raw, {minutes} per minute, {hours} per hour; top: 1 h raw {hour_top_ms:.1f} ms, "
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
    ("start", "end", "source"),
    [
        (START, END, HOURS),
        (START + 17, END - 1800 - 23, HOURS),  # hours, minutes and seconds at both ends
        (START + 86400 + 59, START + 3 * 86400 + 1, HOURS),
        (END - 3 * 3600 - 1, END, HOURS),  # hours from one whole hour on
        (END - 2 * 3600 + 17, END - 3600 + 1, MINUTES),  # under one whole hour: minutes and seconds
    ],
)
def test_rollups_with_raw_edges_equal_raw(
    month: tuple[QueryService, QueryService, Store],
    selector: str,
    kwargs: dict[str, str],
    start: int,
    end: int,
    source: str,
) -> None:
    rollup, raw, _ = month
    got = rollup.top(selector, str(start), str(end), **kwargs)
    want = raw.top(selector, str(start), str(end), **kwargs)
    assert got.source == source
    assert (got.total_samples, got.functions) == (want.total_samples, want.functions)
    by_line = rollup.flamegraph(selector, str(start), str(end), by="line", **kwargs)
    assert _shape(by_line.root) == _shape(raw.flamegraph(selector, str(start), str(end), by="line", **kwargs).root)


def test_labels_and_diff_over_the_month(month: tuple[QueryService, QueryService, Store]) -> None:
    rollup, raw, _ = month
    span = (str(START), str(END))
    assert (
        rollup.labels(*span) == raw.labels(*span) == ["host", "job", "kind", "pid", "rank", "service", "team", "thread"]
    )
    assert rollup.label_values("host", "", *span) == raw.label_values("host", "", *span) == ["gpu-0", "gpu-1"]
    week = (str(END - 7 * 86400), str(END))
    diff = rollup.diff('{rank="0"}', span, '{rank="0"}', week)
    assert diff.sources == (HOURS, HOURS)
    assert diff.to_json() == raw.diff('{rank="0"}', span, '{rank="0"}', week).to_json() | {
        "source": {"base": HOURS, "comparison": HOURS}
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
    seed_month(defaults, per_minute=2)
    seed_month(defaults, start=END - 100 * 86400, days=1, per_minute=2)  # past even the rollup's retention
    for table in (RAW, MINUTES, HOURS):
        defaults.command(f"OPTIMIZE TABLE defaults.{table} FINAL")  # applies the TTLs now
    oldest_raw = defaults.query("SELECT min(toUInt32(ts)) FROM defaults.samples")[0][0]
    assert oldest_raw >= END - 15 * 86400  # raw rows past 14 days are gone
    month_cpu = defaults.query(
        f"SELECT sum(1 + number % 4) FROM numbers({DAYS * 1440 * 2}) WHERE intDiv(number, 2) % 7 != 0"
    )[0][0]
    queries = QueryService(defaults)
    month_top = queries.top("", str(START), str(END))
    assert month_top.source == HOURS and month_top.total_samples == month_cpu
    assert queries.top("", str(END - 20 * 86400 - 17), str(END - 20 * 86400 + 3600)).source == MINUTES
    assert 0 < QueryService(defaults, rollup=False).top("", str(START), str(END)).total_samples < month_cpu / 2
    assert queries.top("", str(END - 101 * 86400), str(END - 99 * 86400)).total_samples == 0


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
        sums = [store.query(f"SELECT sum(count) FROM retry.{t}")[0][0] for t in (RAW, MINUTES, HOURS)]
        assert sums == [7, 7, 7]
    finally:
        store.close()


def test_upgrade_backfills_the_rollup_once_and_retention_follows_the_config(defaults: Store) -> None:
    dsn = defaults.config.dsn
    store = Store(StoreConfig(dsn=dsn, database="upgrade"))
    try:
        migrate(store)
        seed_month(store, start=END - 2 * 86400, days=2)
        for table in (MINUTES, HOURS):  # as if the rows predated migration 003
            store.command(f"TRUNCATE TABLE upgrade.{table}")
        assert backfill_rollup(store) > 0
        assert backfill_rollup(store) == 0  # not empty any more: nothing copied twice
        sums = [store.query(f"SELECT sum(count) FROM upgrade.{t}")[0][0] for t in (RAW, MINUTES, HOURS)]
        assert sums[0] > 0 and sums == [sums[0]] * 3
    finally:
        store.close()
    store = Store(StoreConfig(dsn=dsn, database="upgrade", ttl_days=7, rollup_ttl_days=365))
    try:
        changed = apply_retention(store)
        assert changed == {
            "samples": 7, "processes": 7, "gpu_devices": 7, "gpu_processes": 7, MINUTES: 365, HOURS: 365
        }  # fmt: skip
        assert apply_retention(store) == {}
        engine = store.query("SELECT engine_full FROM system.tables WHERE database = 'upgrade' AND name = 'samples_1m'")
        assert "toIntervalDay(365)" in engine[0][0]
    finally:
        store.close()


def test_hours_come_from_the_minutes_and_a_lone_minute_backfill_does_not_double_them(defaults: Store) -> None:
    """Migration 004: samples_1h is fed by samples_1m's view; hours equal the sum of their minutes."""
    store = Store(StoreConfig(dsn=defaults.config.dsn, database="cascade"))
    try:
        migrate(store)
        written = seed_month(store, start=END - 86400, days=1)
        view = store.query("SELECT as_select FROM system.tables WHERE database = 'cascade' AND name = 'samples_1h_mv'")
        assert "cascade.samples_1m" in view[0][0]
        sums = [store.query(f"SELECT sum(count) FROM cascade.{t}")[0][0] for t in (RAW, MINUTES, HOURS)]
        assert sums == [written] * 3
        per_hour = store.query(
            "SELECT toStartOfHour(ts) AS h, sum(count) FROM cascade.samples_1m GROUP BY h "
            "EXCEPT SELECT ts, sum(count) FROM cascade.samples_1h GROUP BY ts"
        )
        assert per_hour == []
        store.command("TRUNCATE TABLE cascade.samples_1m")  # minutes lost, hours kept
        assert backfill_rollup(store) == 0  # copying the minutes would count every hour twice
        assert store.query("SELECT sum(count) FROM cascade.samples_1h")[0][0] == written
    finally:
        store.close()

"""Group commit: concurrent pushes share inserts, and every batch is still stored exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import pytest

from flamehouse.agent.batch import AgentIdentity, encode_gpu
from flamehouse.agent.model import GpuDeviceSample
from flamehouse.collector import StoreError
from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.store import Store
from flamehouse.proto import ingest_pb2
from tests.builders import Sample, make_batch

pytestmark = pytest.mark.integration

NOW = int(time.time())
STEP = [("main", "train.py", 10), ("step", "train.py", 30)]


def batch(n: int, *, attempt: int = 1, host: str = "gpu-1") -> ingest_pb2.Batch:
    """Batch ``n``: pid 1000 + n, ``n + 1`` samples in one row (so totals identify the batches)."""
    b = make_batch(
        [Sample(NOW - 5, 1000 + n, 7, "MainThread", STEP, "cpu", n + 1)],
        batch_id=f"b-{n}",
        host=host,
        processes={1000 + n: {"service": "trainer", "job": "j1"}},
    )
    b.attempt = attempt
    return b


def gpu_and_samples(batch_id: str, attempt: int) -> ingest_pb2.Batch:
    """One batch carrying both GPU rows (two devices) and one sample row."""
    devices = [
        GpuDeviceSample(NOW - 5, i, f"GPU-{i}", "NVIDIA H200", 50.0, 20.0, 2**30, 2**34, 300.0, 50.0, 1980.0)
        for i in range(2)
    ]
    gpu = encode_gpu(devices, [], AgentIdentity("agent-1", "gpu-1"), batch_id=batch_id)
    b = make_batch([Sample(NOW - 5, 4242, 7, "MainThread", STEP, "cpu", 3)], batch_id=batch_id, host="gpu-1")
    offset = len(b.strings)  # append the GPU batch's string table, shifting its indexes
    b.strings.extend(gpu.strings)
    b.gpu_devices.CopyFrom(gpu.gpu_devices)
    for field in (b.gpu_devices.uuid, b.gpu_devices.name):
        field[:] = [i + offset for i in field]
    b.attempt = attempt
    return b


class Inserts:
    """Wraps ``store.insert``: records every call, can make sample inserts slow or failing."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        self.delay = 0.0
        self.fail_tables: set[str] = set()
        self.started = threading.Event()
        original = store.insert

        def insert(table: str, columns: Sequence[str], data: Sequence[Sequence[Any]], **kw: Any) -> None:
            self.calls.append((table, len(data[0])))
            if table == "samples":
                self.started.set()
                time.sleep(self.delay)
            if table in self.fail_tables:
                raise StoreError(f"insert into {table} failed: injected")
            original(table, columns, data, **kw)

        monkeypatch.setattr(store, "insert", insert)

    def of(self, table: str) -> list[int]:
        return [rows for name, rows in self.calls if name == table]


def stored(store: Store) -> dict[str, int]:
    rows = store.query("SELECT batch_id, sum(count) FROM flamehouse.samples GROUP BY batch_id")
    return {bid: int(total) for bid, total in rows}


def test_concurrent_pushes_share_inserts_and_each_is_stored_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inserts = Inserts(store, monkeypatch)
    inserts.delay = 0.3  # while one insert runs, the other pushes queue up behind it
    counters = IngestCounters()
    ingestor = Ingestor(store, counters=counters)
    with futures.ThreadPoolExecutor(12) as pool:
        acks = list(pool.map(ingestor.push, [batch(n) for n in range(12)]))

    assert [(a.batch_id, a.rows, a.samples, a.duplicate) for a in acks] == [
        (f"b-{n}", 1, n + 1, False) for n in range(12)
    ]
    assert stored(store) == {f"b-{n}": n + 1 for n in range(12)}
    groups = inserts.of("samples")
    assert sum(groups) == 12 and len(groups) < 12 and max(groups) > 1, groups
    snap = counters.snapshot()
    assert snap["insert_groups"] == len(groups) and snap["batches_stored"] == 12
    assert snap["batches_looked_up"] == 0  # first tries are never looked up


def test_a_group_is_capped_at_max_group_rows(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inserts = Inserts(store, monkeypatch)
    inserts.delay = 0.2
    ingestor = Ingestor(store, max_group_rows=3)
    with futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(ingestor.push, [batch(n) for n in range(10)]))
    assert max(inserts.of("samples")) <= 3
    assert stored(store) == {f"b-{n}": n + 1 for n in range(10)}


def test_a_retry_after_a_collector_restart_is_found_in_the_store(store: Store) -> None:
    Ingestor(store).push(batch(1))
    counters = IngestCounters()
    fresh = Ingestor(store, counters=counters)  # a new process: its recent-id cache is empty
    ack = fresh.push(batch(1, attempt=2))
    assert (ack.duplicate, ack.rows, ack.samples) == (True, 0, 0)
    assert stored(store) == {"b-1": 2}
    snap = counters.snapshot()
    assert (snap["batches_duplicate"], snap["batches_looked_up"], snap["batches_found_stored"]) == (1, 1, 1)
    # A batch that was never stored is looked up too, and then written.
    ack = fresh.push(batch(2, attempt=3))
    assert (ack.duplicate, ack.samples) == (False, 3)
    assert stored(store) == {"b-1": 2, "b-2": 3}


def test_agents_without_the_attempt_field_are_looked_up(store: Store) -> None:
    old = batch(4, attempt=0)  # an agent that predates Batch.attempt
    Ingestor(store).push(old)
    assert Ingestor(store).push(old).duplicate
    assert stored(store) == {"b-4": 5}


def test_a_failed_group_fails_every_push_in_it_and_retries_store_each_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = Inserts(store, monkeypatch)
    inserts.delay, inserts.fail_tables = 0.2, {"samples"}
    counters = IngestCounters()
    ingestor = Ingestor(store, counters=counters)
    with futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda b: _outcome(ingestor, b), [batch(n) for n in range(6)]))
    assert outcomes == ["StoreError"] * 6
    assert stored(store) == {}
    assert counters.snapshot()["batches_failed"] == 6
    inserts.delay, inserts.fail_tables = 0.0, set()
    acks = [ingestor.push(batch(n, attempt=2)) for n in range(6)]
    assert not any(a.duplicate for a in acks)
    assert stored(store) == {f"b-{n}": n + 1 for n in range(6)}


def test_gpu_rows_written_by_a_failed_try_are_not_written_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inserts = Inserts(store, monkeypatch)
    inserts.fail_tables = {"samples"}  # GPU rows go in, then the samples insert fails
    with pytest.raises(StoreError):
        Ingestor(store).push(gpu_and_samples("mixed", attempt=1))
    assert store.query("SELECT count() FROM flamehouse.gpu_devices") == [(2,)]
    inserts.fail_tables = set()
    ack = Ingestor(store).push(gpu_and_samples("mixed", attempt=2))
    assert (ack.duplicate, ack.samples) == (False, 3)
    assert store.query("SELECT count() FROM flamehouse.gpu_devices") == [(2,)]
    assert stored(store) == {"mixed": 3}


def test_the_same_batch_pushed_twice_at_once_is_stored_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inserts = Inserts(store, monkeypatch)
    inserts.delay = 0.3
    ingestor = Ingestor(store)
    with futures.ThreadPoolExecutor(3) as pool:
        blocker = pool.submit(ingestor.push, batch(0))
        assert inserts.started.wait(10)  # b-0's insert is running: the next two queue into one group
        twins = list(pool.map(ingestor.push, [batch(5), batch(5, attempt=2)]))
        blocker.result()
    assert sorted(a.duplicate for a in twins) == [False, True]
    assert stored(store) == {"b-0": 1, "b-5": 6}


def _outcome(ingestor: Ingestor, b: ingest_pb2.Batch) -> str:
    try:
        ingestor.push(b)
    except StoreError:
        return "StoreError"
    return "stored"

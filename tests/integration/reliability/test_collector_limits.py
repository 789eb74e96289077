"""The collector under pressure: bounded concurrency (RESOURCE_EXHAUSTED at once), graceful shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
import pytest

from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.shipper import Shipper, ShipperConfig
from flamehouse.collector.store import Store
from tests.integration.reliability.conftest import Collector, agent_batch, push_stub

pytestmark = pytest.mark.integration

AGENT = AgentIdentity(agent_id="pressure", host="host-p")


def slow_samples_insert(store: Store, monkeypatch: pytest.MonkeyPatch, delay: float) -> threading.Event:
    """ClickHouse made slow: every samples insert takes ``delay`` s longer; the event is set when one starts."""
    started = threading.Event()
    original = store.insert

    def insert(table: str, columns: Sequence[str], data: Sequence[Sequence[Any]], **kw: Any) -> None:
        if table == "samples":
            started.set()
            time.sleep(delay)
        original(table, columns, data, **kw)

    monkeypatch.setattr(store, "insert", insert)
    return started


def timed_push(push: Any, batch: Any) -> tuple[str, float]:
    began = time.monotonic()
    try:
        push(batch, timeout=30)
        return "OK", time.monotonic() - began
    except grpc.RpcError as err:
        return err.code().name, time.monotonic() - began


def test_beyond_the_concurrency_limit_calls_are_refused_at_once(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_samples_insert(collector.store, monkeypatch, delay=0.6)
    server = collector.serve(max_concurrent_pushes=2)
    channel, push = push_stub(f"127.0.0.1:{server.port}")
    batches = [agent_batch(AGENT, pid=20, seq=i) for i in range(8)]
    with futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda b: timed_push(push, b), batches))
    channel.close()

    ok = [t for code, t in results if code == "OK"]
    refused = [t for code, t in results if code == "RESOURCE_EXHAUSTED"]
    assert len(ok) + len(refused) == 8 and 2 <= len(ok) < 8, results
    assert max(refused) < 0.5, results  # answered without waiting for the slow store
    accepted = [b for b, (code, _) in zip(batches, results) if code == "OK"]
    assert collector.total_samples() == sum(sum(b.samples.count) for b in accepted)  # refused ones: nothing
    assert collector.counters.snapshot()["batches_stored"] == len(ok)


def test_agents_back_off_and_deliver_everything_under_backpressure(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_samples_insert(collector.store, monkeypatch, delay=0.1)
    server = collector.serve(max_concurrent_pushes=2)
    config = ShipperConfig(target=f"127.0.0.1:{server.port}", backoff_initial=0.05, backoff_max=0.5)
    shippers = [Shipper(config) for _ in range(6)]
    for i, shipper in enumerate(shippers):
        for seq in range(3):
            shipper.submit(agent_batch(AGENT, pid=30 + i, seq=seq))
    assert all(s.flush(60) for s in shippers)
    stats = [s.close() for s in shippers]
    assert sum(s["retries"] for s in stats) > 0  # some were told to back off
    assert sum(s["samples_dropped"] for s in stats) == 0
    assert (
        collector.total_samples() == sum(s["samples_acked"] for s in stats) == sum(s["samples_queued"] for s in stats)
    )


def test_graceful_stop_finishes_the_insert_in_flight(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    inserting = slow_samples_insert(collector.store, monkeypatch, delay=1.5)
    server = collector.serve()
    channel, push = push_stub(f"127.0.0.1:{server.port}")
    batch = agent_batch(AGENT, pid=40)
    with futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(timed_push, push, batch)
        assert inserting.wait(10)
        began = time.monotonic()
        server.stop(grace=10)  # returns once the in-flight call is done
        stopped_after = time.monotonic() - began
        code, _ = pending.result(timeout=30)
    assert code == "OK"
    assert 0.5 < stopped_after < 5
    assert collector.total_samples() == sum(batch.samples.count)
    assert timed_push(push, agent_batch(AGENT, pid=40, seq=1))[0] == "UNAVAILABLE"  # nobody listens now
    channel.close()

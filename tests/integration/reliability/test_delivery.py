"""The agent's shipper against a real in-process collector: outages, spool, bounds, order, restarts."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.shipper import Shipper, ShipperConfig
from flamehouse.proto import ingest_pb2
from tests.integration.e2e.conftest import free_port
from tests.integration.reliability.conftest import Collector, agent_batch

pytestmark = pytest.mark.integration

AGENT = AgentIdentity(agent_id="agent-under-test", host="host-a")


def fast_config(target: str, **overrides: Any) -> ShipperConfig:
    """Short backoffs so an outage of a second or two is noticed and healed quickly."""
    options: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5, "timeout": 10.0} | overrides
    return ShipperConfig(target=target, **options)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def record_pushes(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The batch ids the collector stores, in the order they arrive (repeats left out)."""
    seen: list[str] = []
    original = collector.ingestor.push

    def push(batch: ingest_pb2.Batch) -> ingest_pb2.Ack:
        ack = original(batch)
        if batch.batch_id not in seen:
            seen.append(batch.batch_id)
        return ack

    monkeypatch.setattr(collector.ingestor, "push", push)
    return seen


def test_outage_spools_then_delivers_everything_in_order(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens yet: the collector is "down"
    shipper = Shipper(fast_config(f"127.0.0.1:{port}", max_memory_batches=3, spool_dir=tmp_path / "spool"))
    batches = [agent_batch(AGENT, pid=7, seq=i) for i in range(12)]
    shipper.submit(batches[0])
    wait_for(lambda: shipper.counters.retries >= 1)  # batches[0] is in flight, retried
    for batch in batches[1:]:
        shipper.submit(batch)
    assert shipper.counters.batches_spooled == 8  # 12 - 1 in flight - 3 in memory
    assert len(list((tmp_path / "spool").rglob("*.batch"))) == 8

    arrived = record_pushes(collector, monkeypatch)
    collector.serve(f"127.0.0.1:{port}")
    assert shipper.flush(30)
    stats = shipper.close()

    assert arrived == [b.batch_id for b in batches]
    expected = sum(sum(b.samples.count) for b in batches)
    assert collector.total_samples() == expected == stats["samples_acked"]
    assert stats["samples_dropped"] == 0 and stats["batches_left_in_spool"] == 0
    assert list((tmp_path / "spool").rglob("*.batch")) == []


def test_a_new_agent_delivers_what_a_stopped_one_spooled(collector: Collector, tmp_path: Path) -> None:
    spool, port = tmp_path / "spool", free_port()
    dead = Shipper(fast_config(f"127.0.0.1:{port}", max_memory_batches=2, spool_dir=spool))
    batches = [agent_batch(AGENT, pid=8, seq=i) for i in range(5)]
    for batch in batches:
        dead.submit(batch)
    first = dead.close(timeout=0.5)  # collector unreachable: everything goes to disk
    expected = sum(sum(b.samples.count) for b in batches)
    assert (first["batches_left_in_spool"], first["samples_left_in_spool"]) == (5, expected)
    assert first["samples_acked"] == first["samples_dropped"] == 0

    collector.serve(f"127.0.0.1:{port}")  # the same collector address: its batches wait for it
    second = Shipper(fast_config(f"127.0.0.1:{port}", spool_dir=spool))
    assert second.flush(30)
    stats = second.close()
    assert (stats["batches_recovered"], stats["samples_recovered"]) == (5, expected)
    assert stats["samples_acked"] == expected and stats["batches_left_in_spool"] == 0
    assert collector.total_samples() == expected


def test_spooled_batches_wait_for_the_collector_they_were_meant_for(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = Shipper(fast_config(f"127.0.0.1:{free_port()}", spool_dir=spool))
    first.submit(agent_batch(AGENT, pid=8))
    assert first.close(timeout=0.3)["batches_left_in_spool"] == 1
    other = Shipper(fast_config(f"127.0.0.1:{free_port()}", spool_dir=spool))
    assert other.close(timeout=0.3)["batches_recovered"] == 0
    assert len(list(spool.rglob("*.batch"))) == 1


def test_beyond_both_bounds_the_oldest_are_dropped_and_counted(collector: Collector, tmp_path: Path) -> None:
    batches = [agent_batch(AGENT, pid=9, seq=i) for i in range(14)]
    size = max(b.ByteSize() for b in batches)
    port = free_port()
    shipper = Shipper(
        fast_config(f"127.0.0.1:{port}", max_memory_batches=2, spool_dir=tmp_path / "spool", max_spool_bytes=3 * size)
    )
    shipper.submit(batches[0])
    wait_for(lambda: shipper.counters.retries >= 1)  # batches[0] is in flight and stays so
    for batch in batches[1:]:
        shipper.submit(batch)
    assert shipper.counters.batches_dropped >= 14 - 1 - 2 - 3

    collector.serve(f"127.0.0.1:{port}")
    assert shipper.flush(30)
    stats = shipper.close()
    stored = {r[0] for r in collector.store.query("SELECT DISTINCT batch_id FROM flamehouse.samples")}
    kept = stats["batches_acked"] - 1
    assert stored == {batches[0].batch_id, *(b.batch_id for b in batches[-kept:])}  # the oldest went first
    assert stats["samples_queued"] == stats["samples_acked"] + stats["samples_dropped"]
    assert stats["batches_dropped"] == 14 - stats["batches_acked"]
    assert collector.total_samples() == stats["samples_acked"]


def test_unusable_spool_means_memory_only_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level(logging.INFO, logger="flamehouse.agent"):
        shipper = Shipper(fast_config(f"127.0.0.1:{free_port()}", max_memory_batches=2, spool_dir=blocker))
        for i in range(5):
            shipper.submit(agent_batch(AGENT, pid=10, seq=i))
        stats = shipper.close(timeout=0.2)
    assert stats["spool_errors"] == 1
    assert stats["batches_dropped"] == 5 and stats["batches_spooled"] == 0  # nowhere to keep them at close
    assert caplog.text.count("spool unusable") == 1


def test_spool_failing_mid_run_degrades_and_recovers(
    collector: Collector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool directory disappears (as on a wiped or unmounted disk), then comes back."""
    port = free_port()
    config = fast_config(f"127.0.0.1:{port}", max_memory_batches=1, spool_dir=tmp_path / "spool", spool_retry_s=0)
    batches = [agent_batch(AGENT, pid=11, seq=i) for i in range(10)]
    with caplog.at_level(logging.INFO, logger="flamehouse.agent"):
        shipper = Shipper(config)
        shipper.submit(batches[0])
        wait_for(lambda: shipper.counters.retries >= 1)
        slot = next((tmp_path / "spool").rglob("q*"))
        shutil.rmtree(slot)
        for batch in batches[1:5]:
            shipper.submit(batch)  # 3 spills fail
        slot.mkdir()
        for batch in batches[5:]:
            shipper.submit(batch)  # the disk works again
        collector.serve(f"127.0.0.1:{port}")
        assert shipper.flush(30)
        stats = shipper.close()
    assert stats["spool_errors"] == 3 and stats["batches_dropped"] == 3
    assert caplog.text.count("spool unwritable, running memory-only") == 1 and "spool writable again" in caplog.text
    assert stats["samples_queued"] == stats["samples_acked"] + stats["samples_dropped"]
    assert collector.total_samples() == stats["samples_acked"]


def test_a_batch_over_the_collectors_size_limit_is_dropped_not_retried(collector: Collector) -> None:
    server = collector.serve(max_message_bytes=4096)
    shipper = Shipper(fast_config(f"127.0.0.1:{server.port}"))
    big, small = agent_batch(AGENT, pid=12, rows=2000, seq=0), agent_batch(AGENT, pid=12, rows=5, seq=1)
    assert big.ByteSize() > 4096 > small.ByteSize()
    shipper.submit(big)
    shipper.submit(small)
    assert shipper.flush(30)
    stats = shipper.close()
    assert stats["batches_dropped"] == 1 and stats["samples_dropped"] == sum(big.samples.count)
    assert stats["samples_acked"] == collector.total_samples() == sum(small.samples.count)


def test_store_outage_is_retried_until_the_store_is_back(collector: Collector) -> None:
    """The samples table disappears (ClickHouse answering errors), then returns: stored exactly once."""
    server = collector.serve()
    collector.store.command("RENAME TABLE flamehouse.samples TO flamehouse.samples_away")
    shipper = Shipper(fast_config(f"127.0.0.1:{server.port}"))
    batches = [agent_batch(AGENT, pid=13, seq=i) for i in range(4)]
    for batch in batches:
        shipper.submit(batch)
    wait_for(lambda: shipper.counters.retries >= 3)
    assert collector.counters.snapshot()["batches_failed"] >= 3
    collector.store.command("RENAME TABLE flamehouse.samples_away TO flamehouse.samples")
    assert shipper.flush(30)
    stats = shipper.close()
    assert collector.total_samples() == stats["samples_acked"] == sum(sum(b.samples.count) for b in batches)


def test_attempts_are_numbered_so_only_retries_are_looked_up(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First tries say attempt=1 and skip the collector's store look-up; retries and spooled batches do not."""
    attempts: list[tuple[str, int]] = []
    original = collector.ingestor.push

    def push(batch: ingest_pb2.Batch) -> ingest_pb2.Ack:
        attempts.append((batch.batch_id, batch.attempt))
        return original(batch)

    monkeypatch.setattr(collector.ingestor, "push", push)
    server = collector.serve()
    shipper = Shipper(fast_config(f"127.0.0.1:{server.port}", spool_dir=tmp_path / "spool"))
    steady = [agent_batch(AGENT, pid=14, seq=i) for i in range(3)]
    for batch in steady:
        shipper.submit(batch)
    assert shipper.flush(30)
    assert attempts == [(b.batch_id, 1) for b in steady]
    assert collector.counters.snapshot()["batches_looked_up"] == 0

    collector.store.command("RENAME TABLE flamehouse.samples TO flamehouse.samples_away")
    retried = agent_batch(AGENT, pid=14, seq=3)
    shipper.submit(retried)
    wait_for(lambda: shipper.counters.retries >= 2)
    collector.store.command("RENAME TABLE flamehouse.samples_away TO flamehouse.samples")
    assert shipper.flush(30)
    shipper.close()
    tries = [n for bid, n in attempts if bid == retried.batch_id]
    assert tries == list(range(1, len(tries) + 1)) and len(tries) >= 3
    snap = collector.counters.snapshot()
    # Retries are looked up (a look-up that fails while the table is away is not counted).
    assert 1 <= snap["batches_looked_up"] <= len(tries) - 1
    expected = sum(sum(b.samples.count) for b in [*steady, retried])
    assert collector.total_samples() == expected


def test_a_batch_recovered_from_the_spool_is_sent_as_a_retry(collector: Collector, tmp_path: Path) -> None:
    spool, port = tmp_path / "spool", free_port()
    dead = Shipper(fast_config(f"127.0.0.1:{port}", spool_dir=spool))
    batch = agent_batch(AGENT, pid=15, seq=0)
    dead.submit(batch)
    dead.close(timeout=0.5)  # it may or may not have reached a collector before: unknown
    collector.serve(f"127.0.0.1:{port}")
    second = Shipper(fast_config(f"127.0.0.1:{port}", spool_dir=spool))
    assert second.flush(30)
    second.close()
    snap = collector.counters.snapshot()
    assert (snap["batches_stored"], snap["batches_looked_up"]) == (1, 1)
    assert collector.total_samples() == sum(batch.samples.count)

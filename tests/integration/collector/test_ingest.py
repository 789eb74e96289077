"""Ingest end to end: real gRPC on loopback into a real chDB store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import prometheus_client
import pytest

from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.service import PUSH_METHOD, GrpcServer, ListenError, start_grpc_server
from flamehouse.collector.store import Store
from flamehouse.proto import ids, ingest_pb2
from tests.builders import Sample, make_batch

pytestmark = pytest.mark.integration

# Real "now": rows older than the table TTL are dropped by background merges.
NOW = int(time.time())
MAIN = ("main", "train.py", 10)
STEP = ("step", "train.py", 30)
LOAD = ("load", "data.py", 7)
TABLES = ("samples", "frames", "stacks", "processes")


def sample_batch(batch_id: str = "b-1", *, spread_days: int = 0) -> ingest_pb2.Batch:
    """Three rows, nine samples, two processes; ``spread_days`` moves the first row back (another partition)."""
    return make_batch(
        [
            Sample(NOW - 2 - spread_days * 86_400, 100, 11, "MainThread", [MAIN, STEP], "cpu", 3),
            Sample(NOW - 1, 100, 11, "MainThread", [MAIN, STEP], "wall", 5),
            Sample(NOW - 1, 200, 22, "loader", [MAIN, LOAD], "cpu", 1),
        ],
        batch_id=batch_id,
        host="gpu-1",
        start_time_ms=(NOW - 600) * 1000 + 123,
        processes={
            100: {"service": "trainer", "job": "j1", "rank": "0", "pid": "100", "ppid": "1", "LOCAL_RANK": "0"},
            200: {"service": "trainer", "job": "j1", "host": "gpu-2", "team": "ml"},
        },
    )


@pytest.fixture
def counters() -> IngestCounters:
    return IngestCounters()


@pytest.fixture
def ingestor(store: Store, counters: IngestCounters) -> Ingestor:
    return Ingestor(store, counters=counters, clock=lambda: float(NOW))


@pytest.fixture
def serve(ingestor: Ingestor) -> Iterator[Callable[..., GrpcServer]]:
    started: list[GrpcServer] = []

    def start(**options: Any) -> GrpcServer:
        server = start_grpc_server(ingestor, "127.0.0.1:0", **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(grace=None)


@pytest.fixture
def connect() -> Iterator[Callable[[GrpcServer], grpc.UnaryUnaryMultiCallable[Any, Any]]]:
    channels: list[grpc.Channel] = []

    def push_for(server: GrpcServer) -> grpc.UnaryUnaryMultiCallable[Any, Any]:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return channel.unary_unary(
            PUSH_METHOD,
            request_serializer=ingest_pb2.Batch.SerializeToString,
            response_deserializer=ingest_pb2.Ack.FromString,
        )

    yield push_for
    for channel in channels:
        channel.close()


def table_counts(store: Store) -> dict[str, int]:
    return {t: store.query(f"SELECT count() FROM flamehouse.{t}")[0][0] for t in TABLES}


def total_samples(store: Store) -> int:
    return int(store.query("SELECT sum(count) FROM flamehouse.samples")[0][0])


def test_valid_batch_is_stored_with_exact_totals(store: Store, serve: Any, connect: Any) -> None:
    ack = connect(serve())(sample_batch(), timeout=30)

    assert (ack.batch_id, ack.rows, ack.samples, ack.duplicate) == ("b-1", 3, 9, False)
    rows = store.query(
        "SELECT toUnixTimestamp(ts), service, job, host, pid, rank, thread, tid, kind, labels, stack_id, count, "
        "batch_id FROM flamehouse.samples ORDER BY ts, pid, kind"
    )
    main_step = ids.stack_id([ids.frame_id(*MAIN), ids.frame_id(*STEP)])
    main_load = ids.stack_id([ids.frame_id(*MAIN), ids.frame_id(*LOAD)])
    rank0, other = {"LOCAL_RANK": "0"}, {"team": "ml"}
    assert rows == [
        (NOW - 2, "trainer", "j1", "gpu-1", 100, "0", "MainThread", 11, "cpu", rank0, main_step, 3, "b-1"),
        (NOW - 1, "trainer", "j1", "gpu-1", 100, "0", "MainThread", 11, "wall", rank0, main_step, 5, "b-1"),
        (NOW - 1, "trainer", "j1", "gpu-2", 200, "", "loader", 22, "cpu", other, main_load, 1, "b-1"),
    ]  # fmt: skip


def test_frames_stacks_and_processes_are_stored(store: Store, ingestor: Ingestor) -> None:
    ingestor.push(sample_batch())

    frames = store.query("SELECT frame_id, function_id, function, file, line FROM flamehouse.frames ORDER BY line")
    assert frames == [(ids.frame_id(*f), ids.function_id(f[0], f[1]), *f) for f in (LOAD, MAIN, STEP)]
    stacks = store.query("SELECT frame_ids, function_ids FROM flamehouse.stacks FINAL ORDER BY stack_id")
    expected = [
        ([ids.frame_id(*f) for f in stack], [ids.function_id(f[0], f[1]) for f in stack])
        for stack in ((MAIN, STEP), (MAIN, LOAD))
    ]
    assert sorted(stacks) == sorted(expected)
    procs = store.query(
        "SELECT host, pid, toUnixTimestamp64Milli(start_time), ppid, cmdline, service, job, rank, labels, "
        "agent_id, agent_version, toUnixTimestamp(last_seen) FROM flamehouse.processes ORDER BY pid"
    )
    start, agent = (NOW - 600) * 1000 + 123, ("agent-1", "0.1.0")
    assert procs == [
        ("gpu-1", 100, start, 1, "python worker-100.py", "trainer", "j1", "0", {"LOCAL_RANK": "0"}, *agent, NOW),
        ("gpu-2", 200, start, 1, "python worker-200.py", "trainer", "j1", "", {"team": "ml"}, *agent, NOW),
    ]  # fmt: skip


def test_same_batch_twice_is_stored_once(store: Store, serve: Any, connect: Any, counters: IngestCounters) -> None:
    push = connect(serve())
    first = push(sample_batch(), timeout=30)
    second = push(sample_batch(), timeout=30)

    assert (first.duplicate, second.duplicate) == (False, True)
    assert (second.batch_id, second.rows, second.samples) == ("b-1", 0, 0)
    assert total_samples(store) == 9
    snap = counters.snapshot()
    assert snap["batches_received"] == 2
    assert (snap["batches_stored"], snap["batches_duplicate"], snap["rows_stored"], snap["samples_stored"]) == (
        1,
        1,
        3,
        9,
    )


def test_store_deduplicates_a_retry_after_a_restart(store: Store) -> None:
    """A fresh Ingestor (empty in-memory id cache) finds a retried batch in the store."""
    batch = sample_batch(spread_days=1)  # rows in two daily partitions
    Ingestor(store).push(batch)
    batch.attempt = 2
    assert Ingestor(store).push(batch).duplicate

    assert total_samples(store) == 9
    assert store.query("SELECT count() FROM flamehouse.samples")[0][0] == 3


def test_malformed_batch_is_rejected_and_changes_nothing(
    store: Store, serve: Any, connect: Any, counters: IngestCounters
) -> None:
    push = connect(serve())
    push(sample_batch("ok"), timeout=30)
    before = table_counts(store)
    bad = sample_batch("bad")
    bad.samples.stack_index[1] = 17

    with pytest.raises(grpc.RpcError) as err:
        push(bad, timeout=30)

    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "samples.stack_index[1]=17 is out of range: the batch has 2 stacks"
    assert table_counts(store) == before
    assert counters.snapshot()["batches_rejected"] == 1


@pytest.mark.parametrize(
    "metadata",
    [None, [("authorization", "Bearer wrong-token")], [("authorization", "s3cret")], [("x-token", "s3cret")]],
    ids=["missing", "wrong", "no-scheme", "other-key"],
)
def test_bad_token_is_unauthenticated(
    store: Store, serve: Any, connect: Any, metadata: Any, caplog: pytest.LogCaptureFixture
) -> None:
    push = connect(serve(tokens=frozenset({"s3cret", "other"})))
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.RpcError) as err:
        push(sample_batch(), metadata=metadata, timeout=30)

    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <token>" in (err.value.details() or "")
    assert table_counts(store)["samples"] == 0
    assert "wrong-token" not in caplog.text and "s3cret" not in caplog.text


@pytest.mark.parametrize("token", ["s3cret", "other"])
def test_configured_token_is_accepted(store: Store, serve: Any, connect: Any, token: str) -> None:
    push = connect(serve(tokens=frozenset({"s3cret", "other"})))
    ack = push(sample_batch(), metadata=[("authorization", f"Bearer {token}")], timeout=30)
    assert ack.rows == 3


def test_gzip_compressed_call_is_stored(store: Store, serve: Any, connect: Any) -> None:
    ack = connect(serve())(sample_batch(), compression=grpc.Compression.Gzip, timeout=30)
    assert (ack.rows, ack.samples) == (3, 9)
    assert total_samples(store) == 9


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip], ids=["plain", "gzip"])
def test_oversize_message_is_resource_exhausted(
    store: Store, serve: Any, connect: Any, compression: grpc.Compression | None
) -> None:
    """The limit applies to the decompressed size, so a small gzip body cannot smuggle a huge batch."""
    push = connect(serve(max_message_bytes=1024))
    big = make_batch([Sample(NOW - 1, 1, tid, "worker", [MAIN]) for tid in range(200)])
    assert big.ByteSize() > 1024

    with pytest.raises(grpc.RpcError) as err:
        push(big, compression=compression, timeout=30)

    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert table_counts(store)["samples"] == 0


def test_store_failure_is_unavailable(store: Store, serve: Any, connect: Any, counters: IngestCounters) -> None:
    store.command("DROP TABLE flamehouse.samples")
    with pytest.raises(grpc.RpcError) as err:
        connect(serve())(sample_batch(), timeout=30)

    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == "store unavailable, retry"
    assert counters.snapshot()["batches_failed"] == 1


def test_unexpected_error_is_internal_and_logged(
    ingestor: Ingestor, serve: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(batch: ingest_pb2.Batch) -> ingest_pb2.Ack:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(ingestor, "push", broken)
    with pytest.raises(grpc.RpcError) as err:
        connect(serve())(sample_batch(), timeout=30)

    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "ZeroDivisionError: bug" in caplog.text


def test_busy_port_raises_listen_error(serve: Any, ingestor: Ingestor) -> None:
    busy = serve()
    with pytest.raises(ListenError, match=f"cannot listen for gRPC on '127.0.0.1:{busy.port}'"):
        start_grpc_server(ingestor, f"127.0.0.1:{busy.port}")


def test_counters_are_exposed_to_prometheus(ingestor: Ingestor, counters: IngestCounters) -> None:
    registry = prometheus_client.CollectorRegistry()
    counters.register(registry)
    ingestor.push(sample_batch())
    ingestor.push(sample_batch())

    text = prometheus_client.generate_latest(registry).decode()
    assert "flamehouse_collector_batches_received_total 2.0" in text
    assert "flamehouse_collector_batches_duplicate_total 1.0" in text
    assert "flamehouse_collector_samples_stored_total 9.0" in text
    assert "# TYPE flamehouse_collector_rows_stored_total counter" in text

"""Fuzzing the real gRPC endpoint: random bytes and structurally valid but hostile batches.

Every bad input must be answered INVALID_ARGUMENT, store nothing, and leave the server
serving. NaN in a GPU float is the documented "not reported" marker, so it is accepted;
hostile floats here are infinities and out-of-range percentages.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.schema import migrate
from flamehouse.collector.service import PUSH_METHOD, start_grpc_server
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ingest_pb2
from tests.builders import Sample, make_batch
from tests.integration.reliability.conftest import TABLES

pytestmark = pytest.mark.integration

NOW = int(time.time())
U32 = st.integers(min_value=0, max_value=2**32 - 1)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Endpoint:
    """One collector for the whole module, with a raw-bytes and a typed Push."""

    def __init__(self, root: Path) -> None:
        self.store = Store(StoreConfig(dsn=embedded_dsn(root)))
        migrate(self.store)
        self.counters = IngestCounters()
        self.server = start_grpc_server(Ingestor(self.store, counters=self.counters), "127.0.0.1:0")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.raw = self.channel.unary_unary(PUSH_METHOD, request_serializer=None, response_deserializer=None)
        self.push = self.channel.unary_unary(
            PUSH_METHOD,
            request_serializer=ingest_pb2.Batch.SerializeToString,
            response_deserializer=ingest_pb2.Ack.FromString,
        )

    def code(self, call: Callable[..., Any], payload: Any) -> grpc.StatusCode:
        try:
            call(payload, timeout=30)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    def stored_rows(self) -> int:
        return sum(int(self.store.query(f"SELECT count() FROM flamehouse.{t}")[0][0]) for t in TABLES)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    ep = Endpoint(tmp_path_factory.mktemp("fuzz"))
    yield ep
    ep.channel.close()
    ep.server.stop(grace=None)
    ep.store.close()


def valid_batch(batch_id: str = "fuzz-base") -> ingest_pb2.Batch:
    main, step, load = ("main", "train.py", 10), ("step", "train.py", 30), ("load", "data.py", 7)
    batch = make_batch(
        [
            Sample(NOW - 2, 100, 11, "MainThread", [main, step], "cpu", 3),
            Sample(NOW - 1, 100, 11, "MainThread", [main, step], "wall", 5),
            Sample(NOW - 1, 200, 22, "loader", [main, load], "cpu", 1),
        ],
        batch_id=batch_id,
        start_time_ms=(NOW - 600) * 1000,
        processes={100: {"service": "trainer", "rank": "0"}, 200: {"service": "trainer"}},
    )
    gpu = batch.gpu_devices
    gpu.time.append(NOW - 1)
    gpu.index.append(0)
    gpu.uuid.append(0)
    gpu.name.append(0)
    for name in ("sm_util", "mem_util", "power_watts", "temperature_c", "sm_clock_mhz"):
        getattr(gpu, name).append(50.0)
    gpu.mem_used_bytes.append(1)
    gpu.mem_total_bytes.append(2)
    return batch


# Each mutation takes the batch and a drawn value and makes the batch break the contract.
Mutation = Callable[[ingest_pb2.Batch, Any], None]


def _set(path: str, index: int = 0) -> Mutation:
    def mutate(b: ingest_pb2.Batch, value: Any) -> None:
        *parents, leaf = path.split(".")
        obj: Any = b
        for p in parents:
            obj = getattr(obj, p)
        getattr(obj, leaf)[index] = value

    return mutate


def _other(path: str) -> Mutation:
    """Replaces an id with a different value (a mismatched hash)."""

    def mutate(b: ingest_pb2.Batch, value: int) -> None:
        parent, leaf = path.split(".")
        column = getattr(getattr(b, parent), leaf)
        column[0] = value if value != column[0] else value ^ 1

    return mutate


def _huge_string(b: ingest_pb2.Batch, size: int) -> None:
    b.strings[1] = "é" * size  # 2 bytes each: over the 4096-byte limit, far under the message limit


def _labels(b: ingest_pb2.Batch, count: int) -> None:
    for i in range(count):
        b.strings.append(f"label_{i}")
        b.processes[0].labels.add(name=len(b.strings) - 1, value=0)


def _extra_column_value(b: ingest_pb2.Batch, value: int) -> None:
    b.samples.tid.append(value)


def _duplicate_process(b: ingest_pb2.Batch, _: Any) -> None:
    b.processes.append(copy.deepcopy(b.processes[0]))


def _bad_header(b: ingest_pb2.Batch, choice: str) -> None:
    if choice == "host":
        b.agent.host = ""
    else:
        b.batch_id = {"empty": "", "long": "x" * 129, "control": "id\x00\n"}[choice]


HOSTILE: list[tuple[Mutation, st.SearchStrategy[Any]]] = [
    (_set("samples.stack_index"), st.integers(min_value=2, max_value=2**32 - 1)),
    (_set("samples.thread_name"), st.integers(min_value=64, max_value=2**32 - 1)),
    (_set("frames.function"), st.integers(min_value=64, max_value=2**32 - 1)),
    (_set("stacks.frame_index"), st.integers(min_value=3, max_value=2**32 - 1)),
    (_set("stacks.length"), st.one_of(st.just(0), st.integers(min_value=513, max_value=2**32 - 1))),
    (_other("frames.id"), st.integers(min_value=0, max_value=2**64 - 1)),
    (_other("stacks.id"), st.integers(min_value=0, max_value=2**64 - 1)),
    (_set("samples.count"), st.just(0)),
    (_set("samples.kind"), st.integers(min_value=3, max_value=2**31 - 1) | st.just(0)),
    (
        _set("samples.time"),
        st.integers(min_value=-(2**63), max_value=NOW - 30 * 86_400) | st.integers(NOW + 7200, 2**63 - 1),
    ),
    (_set("samples.pid"), st.integers(min_value=201, max_value=2**32 - 1)),
    (_huge_string, st.integers(min_value=2049, max_value=200_000)),
    (_labels, st.integers(min_value=64, max_value=300)),
    (_extra_column_value, U32),
    (_duplicate_process, st.none()),
    (_bad_header, st.sampled_from(["host", "empty", "long", "control"])),
    (_set("gpu_devices.sm_util"), st.sampled_from([float("inf"), float("-inf"), -0.5, 100.5, 1e30])),
    (_set("gpu_devices.index"), st.integers(min_value=1024, max_value=2**32 - 1)),
    (_set("gpu_devices.time"), st.integers(min_value=-(2**63), max_value=0)),
]


@st.composite
def hostile_batches(draw: st.DrawFn) -> ingest_pb2.Batch:
    batch = valid_batch(f"hostile-{draw(st.integers(0, 10**9))}")
    mutation, values = draw(st.sampled_from(HOSTILE))
    mutation(batch, draw(values))
    return batch


@FUZZ
@given(payload=st.binary(max_size=2048))
def test_random_bytes_are_rejected(endpoint: Endpoint, payload: bytes) -> None:
    code = endpoint.code(endpoint.raw, payload)
    # Bytes that happen to decode as an empty, well-formed batch (id and host, no rows) are valid.
    assert code == grpc.StatusCode.INVALID_ARGUMENT or (code == grpc.StatusCode.OK and endpoint.stored_rows() == 0)


@FUZZ
@given(batch=hostile_batches())
def test_hostile_batches_are_rejected(endpoint: Endpoint, batch: ingest_pb2.Batch) -> None:
    assert endpoint.code(endpoint.push, batch) == grpc.StatusCode.INVALID_ARGUMENT


def test_after_the_fuzzing_nothing_is_stored_and_the_server_still_serves(endpoint: Endpoint) -> None:
    snap = endpoint.counters.snapshot()
    assert snap["batches_received"] >= 200 and snap["rows_stored"] == snap["gpu_rows_stored"] == 0
    assert endpoint.stored_rows() == 0
    assert endpoint.code(endpoint.push, valid_batch("after-fuzz")) == grpc.StatusCode.OK
    assert int(endpoint.store.query("SELECT sum(count) FROM flamehouse.samples")[0][0]) == 9

"""validate(): a correct batch decodes exactly; each broken one is rejected with a message that says what to fix."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from flamehouse.collector import InvalidBatch
from flamehouse.collector.validate import DecodedBatch, IngestLimits, VerifiedIds, validate
from flamehouse.proto import ids, ingest_pb2
from tests.builders import Sample, make_batch

NOW = 1_800_000_000
TTL_DAYS = 14
MAIN = ("main", "train.py", 10)
STEP = ("step", "train.py", 30)
LOAD = ("load", "data.py", 7)


def good_batch() -> ingest_pb2.Batch:
    """Two processes, three rows over two stacks sharing their root frame."""
    return make_batch(
        [
            Sample(NOW - 2, 100, 1, "MainThread", [MAIN, STEP], "cpu", 3),
            Sample(NOW - 1, 100, 1, "MainThread", [MAIN, STEP], "wall", 5),
            Sample(NOW - 1, 200, 9, "loader", [MAIN, LOAD], "cpu", 1),
        ],
        batch_id="b-1",
        host="gpu-1",
        processes={
            100: {"service": "trainer", "job": "j1", "rank": "0", "pid": "100", "ppid": "1", "LOCAL_RANK": "0"},
            200: {"service": "trainer", "host": "override-host", "team": "ml"},
        },
    )


def check(batch: ingest_pb2.Batch, limits: IngestLimits | None = None) -> DecodedBatch:
    return validate(batch, limits or IngestLimits(), now=NOW, ttl_days=TTL_DAYS)


def test_good_batch_decodes_to_plain_columns() -> None:
    decoded = check(good_batch())

    assert decoded.batch_id == "b-1"
    assert (decoded.agent_id, decoded.agent_version) == ("agent-1", "0.1.0")
    assert decoded.rows == 3
    assert decoded.sample_total == 9
    samples = decoded.samples
    assert samples.time == (NOW - 2, NOW - 1, NOW - 1)
    assert samples.pid == (100, 100, 200)
    assert samples.tid == (1, 1, 9)
    assert samples.thread == ("MainThread", "MainThread", "loader")
    assert samples.kind == (ingest_pb2.KIND_CPU, ingest_pb2.KIND_WALL, ingest_pb2.KIND_CPU)
    assert samples.count == (3, 5, 1)
    main_step = ids.stack_id([ids.frame_id(*MAIN), ids.frame_id(*STEP)])
    main_load = ids.stack_id([ids.frame_id(*MAIN), ids.frame_id(*LOAD)])
    assert samples.stack_id == (main_step, main_step, main_load)


def test_frames_and_stacks_carry_recomputed_ids() -> None:
    decoded = check(good_batch())

    frames = decoded.frames
    assert frames.function == ("main", "step", "load")
    assert frames.file == ("train.py", "train.py", "data.py")
    assert frames.line == (10, 30, 7)
    assert frames.function_id == tuple(ids.function_id(f, fl) for f, fl, _ in (MAIN, STEP, LOAD))
    stacks = decoded.stacks
    assert stacks.frame_ids[1] == (ids.frame_id(*MAIN), ids.frame_id(*LOAD))
    assert stacks.function_ids[1] == (ids.function_id("main", "train.py"), ids.function_id("load", "data.py"))


def test_labels_are_split_into_columns_and_the_rest() -> None:
    first, second = check(good_batch()).processes

    assert (first.pid, first.ppid, first.cmdline) == (100, 1, "python worker-100.py")
    assert (first.service, first.job, first.rank, first.host) == ("trainer", "j1", "0", "gpu-1")
    assert dict(first.labels) == {"LOCAL_RANK": "0"}  # pid/ppid labels dropped: they are columns
    assert (second.service, second.job, second.rank) == ("trainer", "", "")
    assert second.host == "override-host"  # a host label overrides agent.host
    assert dict(second.labels) == {"team": "ml"}


def test_batch_without_samples_is_valid() -> None:
    batch = make_batch([], processes={})
    decoded = check(batch)
    assert (decoded.rows, decoded.sample_total, decoded.processes) == (0, 0, ())


@pytest.mark.parametrize("offset", [-TTL_DAYS * 86_400, 3600])
def test_time_window_bounds_are_inclusive(offset: int) -> None:
    batch = make_batch([Sample(NOW + offset, 1, 1, "t", [MAIN])])
    assert check(batch).samples.time == (NOW + offset,)


def test_string_limit_counts_utf8_bytes() -> None:
    limits = IngestLimits(max_string_bytes=20)
    check(make_batch([Sample(NOW, 1, 1, "x" * 20, [MAIN])]), limits)
    with pytest.raises(InvalidBatch, match=r"strings\[\d+\] is 22 bytes, over the limit of 20"):
        check(make_batch([Sample(NOW, 1, 1, "é" * 11, [MAIN])]), limits)


Mutation = Callable[[ingest_pb2.Batch], object]


def _set_label(pid_index: int, label_index: int, name: str) -> Mutation:
    def mutate(b: ingest_pb2.Batch) -> None:
        b.strings.append(name)
        b.processes[pid_index].labels[label_index].name = len(b.strings) - 1

    return mutate


def _add_string(value: str) -> Mutation:
    return lambda b: b.strings.append(value)


BROKEN: list[tuple[str, Mutation, str]] = [
    ("empty batch_id", lambda b: setattr(b, "batch_id", ""), "batch_id is empty: set a unique id per batch"),
    ("long batch_id", lambda b: setattr(b, "batch_id", "x" * 129), "batch_id is 129 characters, over the limit of 128"),
    ("control char in batch_id", lambda b: setattr(b, "batch_id", "a\nb"), "batch_id 'a\\nb' has non-printable"),
    ("empty host", lambda b: setattr(b.agent, "host", ""), "agent.host is empty"),
    ("strings[0] not empty", lambda b: b.strings.__setitem__(0, "x"), "strings[0]='x' must be \"\""),
    ("string too long", _add_string("y" * 4097), "is 4097 bytes, over the limit of 4096: truncate it"),
    (
        "frames ragged",
        lambda b: b.frames.line.append(1),
        "frames columns differ in length (id=3, function=3, file=3, line=4)",
    ),
    (
        "frame function index",
        lambda b: b.frames.function.__setitem__(1, 99),
        "frames.function[1]=99 is out of range: the batch has",
    ),
    ("frame file index", lambda b: b.frames.file.__setitem__(2, 99), "frames.file[2]=99 is out of range"),
    (
        "frame id mismatch",
        lambda b: b.frames.line.__setitem__(0, 11),
        "does not match ids.frame_id('main', 'train.py', 11)=",
    ),
    ("stacks ragged", lambda b: b.stacks.id.append(5), "stacks columns differ in length (id=3, length=2)"),
    ("empty stack", lambda b: b.stacks.length.__setitem__(0, 0), "stacks.length[0]=0 must be between 1 and 512 frames"),
    (
        "lengths vs frame_index",
        lambda b: b.stacks.frame_index.append(0),
        "stacks.length sums to 4 but stacks.frame_index has 5",
    ),
    (
        "frame_index range",
        lambda b: b.stacks.frame_index.__setitem__(3, 3),
        "stacks.frame_index[3]=3 is out of range: the batch has 3 frames",
    ),
    (
        "stack id mismatch",
        lambda b: b.stacks.id.__setitem__(1, 12345),
        "stacks.id[1]=12345 does not match ids.stack_id",
    ),
    ("samples ragged", lambda b: b.samples.count.append(1), "samples columns differ in length"),
    (
        "stack_index range",
        lambda b: b.samples.stack_index.__setitem__(1, 17),
        "samples.stack_index[1]=17 is out of range: the batch has 2 stacks",
    ),
    (
        "thread_name range",
        lambda b: b.samples.thread_name.__setitem__(2, 50),
        "samples.thread_name[2]=50 is out of range",
    ),
    (
        "kind unspecified",
        lambda b: b.samples.kind.__setitem__(0, ingest_pb2.KIND_UNSPECIFIED),
        "samples.kind[0]=0 must be KIND_CPU (1) or KIND_WALL (2)",
    ),
    ("count zero", lambda b: b.samples.count.__setitem__(1, 0), "samples.count[1]=0 must be >= 1"),
    (
        "unknown pid",
        lambda b: b.samples.pid.__setitem__(2, 999),
        "samples.pid[2]=999 is not in processes: send a Process",
    ),
    (
        "too old",
        lambda b: b.samples.time.__setitem__(0, NOW - TTL_DAYS * 86_400 - 1),
        "samples.time[0]=1798790399 is outside [1798790400, 1800003600]",
    ),
    ("too far ahead", lambda b: b.samples.time.__setitem__(1, NOW + 3601), "is outside [1798790400, 1800003600]"),
    ("milliseconds as time", lambda b: b.samples.time.__setitem__(0, NOW * 1000), "send unix seconds"),
    (
        "repeated pid",
        lambda b: b.processes.add().CopyFrom(b.processes[0]),
        "processes[2] (pid 100) repeats processes[0]",
    ),
    ("cmdline index", lambda b: setattr(b.processes[1], "cmdline", 99), "processes[1].cmdline[0]=99 is out of range"),
    (
        "start time future",
        lambda b: setattr(b.processes[0], "start_time_ms", (NOW + 7200) * 1000),
        "processes[0] (pid 100).start_time_ms=1800007200000 is not a past unix time in milliseconds",
    ),
    (
        "label value index",
        lambda b: setattr(b.processes[0].labels[1], "value", 99),
        "processes[0] (pid 100).labels[1].name/value",
    ),
    ("bad label name", _set_label(0, 5, "1bad"), "labels[5] name '1bad' must match ^[A-Za-z_]"),
    ("dotted label name", _set_label(1, 2, "k8s.pod"), "name 'k8s.pod' must match"),
    ("repeated label", _set_label(0, 1, "service"), "has label 'service' twice"),
    ("no service", _set_label(1, 0, "svc"), "processes[1] (pid 200) has no service label: run the agent with --label"),
]


@pytest.mark.parametrize(("mutate", "message"), [pytest.param(m, s, id=i) for i, m, s in BROKEN])
def test_broken_batch_is_rejected_with_a_helpful_message(mutate: Mutation, message: str) -> None:
    batch = good_batch()
    mutate(batch)
    with pytest.raises(InvalidBatch, match=re.escape(message)):
        check(batch)


def test_empty_service_value_is_rejected() -> None:
    batch = make_batch([Sample(NOW, 1, 1, "t", [MAIN])], processes={1: {"service": ""}})
    with pytest.raises(InvalidBatch, match="has no service label"):
        check(batch)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (IngestLimits(max_rows=2), "samples has 3 rows, over the limit of 2: send smaller batches"),
        (IngestLimits(max_frames_per_stack=1), "stacks.length[0]=2 must be between 1 and 1 frames"),
        (IngestLimits(max_labels_per_process=5), "processes[0] (pid 100) has 6 labels, over the limit of 5"),
        (IngestLimits(max_string_bytes=12), "strings[1] is 20 bytes, over the limit of 12: truncate it"),
    ],
)
def test_limits_are_enforced(limits: IngestLimits, message: str) -> None:
    with pytest.raises(InvalidBatch, match=re.escape(message)):
        check(good_batch(), limits)


def test_remembered_ids_are_trusted_only_for_the_content_they_were_checked_with() -> None:
    known = VerifiedIds()
    first = validate(good_batch(), IngestLimits(), now=NOW, ttl_days=TTL_DAYS, known=known)
    assert validate(good_batch(), IngestLimits(), now=NOW, ttl_days=TTL_DAYS, known=known) == first
    assert len(known.frames) == 3 and len(known.stacks) == 2
    forged_frame = good_batch()
    forged_frame.frames.line[0] = 11  # same frame id, another line: must still be caught
    with pytest.raises(InvalidBatch, match=re.escape("does not match ids.frame_id('main', 'train.py', 11)=")):
        validate(forged_frame, IngestLimits(), now=NOW, ttl_days=TTL_DAYS, known=known)
    forged_stack = good_batch()
    forged_stack.stacks.frame_index[1], forged_stack.stacks.frame_index[3] = (
        forged_stack.stacks.frame_index[3],
        forged_stack.stacks.frame_index[1],
    )  # both stacks keep their ids but swap leaf frames
    with pytest.raises(InvalidBatch, match=r"stacks\.id\[0\]=\d+ does not match ids\.stack_id"):
        validate(forged_stack, IngestLimits(), now=NOW, ttl_days=TTL_DAYS, known=known)


def test_remembered_ids_are_bounded() -> None:
    known = VerifiedIds(capacity=2)
    validate(good_batch(), IngestLimits(), now=NOW, ttl_days=TTL_DAYS, known=known)
    assert len(known.frames) <= 2 and len(known.stacks) <= 2

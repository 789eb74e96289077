"""encode: rows → struct-of-arrays batch with a string table and stable ids."""

from __future__ import annotations

from flamehouse.agent.batch import AgentIdentity, batch_samples, encode
from flamehouse.agent.model import Frame, Kind, ProcessInfo, SampleRow
from flamehouse.proto import ids, ingest_pb2

MOD = Frame("<module>", "/job/train.py", 40)
STEP = Frame("step", "/job/train.py", 12)
LOAD = Frame("load", "/job/data.py", 7)
PROC = ProcessInfo(7, 1, 1_700_000_000_000, "python train.py", {"service": "trainer", "rank": "0"})
AGENT = AgentIdentity("a1", "gpu-1")


def rows() -> list[SampleRow]:
    return [
        SampleRow(1000, 7, 101, "MainThread", (MOD, STEP), Kind.CPU, 5),
        SampleRow(1001, 7, 101, "MainThread", (MOD, STEP), Kind.CPU, 3),
        SampleRow(1001, 7, 102, "loader", (MOD, LOAD), Kind.CPU, 2),
    ]


def test_frames_and_stacks_are_sent_once_with_stable_ids() -> None:
    batch = encode(rows(), [PROC], AGENT, batch_id="b1")
    assert batch.batch_id == "b1" and batch.agent.host == "gpu-1"
    assert len(batch.frames.id) == 3 and len(batch.stacks.id) == 2
    assert batch.frames.id[0] == ids.frame_id("<module>", "/job/train.py", 40)
    step_stack = [ids.frame_id(f.function, f.file, f.line) for f in (MOD, STEP)]
    assert batch.stacks.id[0] == ids.stack_id(step_stack)
    assert list(batch.stacks.length) == [2, 2]


def test_samples_decode_back_to_the_rows() -> None:
    batch = ingest_pb2.Batch.FromString(encode(rows(), [PROC], AGENT).SerializeToString())
    s, strings = batch.samples, batch.strings
    decoded = []
    offsets = [0, batch.stacks.length[0]]
    for i in range(len(s.count)):
        start = offsets[s.stack_index[i]]
        frame_idx = batch.stacks.frame_index[start : start + batch.stacks.length[s.stack_index[i]]]
        leaf = strings[batch.frames.function[frame_idx[-1]]]
        decoded.append((s.time[i], s.tid[i], strings[s.thread_name[i]], leaf, s.count[i]))
    assert decoded == [
        (1000, 101, "MainThread", "step", 5),
        (1001, 101, "MainThread", "step", 3),
        (1001, 102, "loader", "load", 2),
    ]
    assert list(s.kind) == [ingest_pb2.KIND_CPU] * 3
    assert batch_samples(batch) == 10


def test_process_labels_travel_through_the_string_table() -> None:
    batch = encode(rows(), [PROC], AGENT)
    proc = batch.processes[0]
    labels = {batch.strings[label.name]: batch.strings[label.value] for label in proc.labels}
    assert labels == {"service": "trainer", "rank": "0"}
    assert batch.strings[proc.cmdline] == "python train.py" and proc.start_time_ms == 1_700_000_000_000


def test_each_batch_gets_a_fresh_id() -> None:
    assert encode([], [PROC], AGENT).batch_id != encode([], [PROC], AGENT).batch_id

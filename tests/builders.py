"""Builders for valid wire batches, shared by unit and integration tests.

``make_batch`` encodes plain Python rows into a correct :class:`ingest_pb2.Batch`
(string table with ``""`` at index 0, deduplicated frames and stacks, ids from
:mod:`flamehouse.proto.ids`), so a test only states what it cares about::

    batch = make_batch(
        [Sample(now, 42, 7, "MainThread", [("main", "train.py", 10), ("step", "train.py", 30)], "cpu", 3)],
        processes={42: {"service": "trainer", "rank": "0"}},
    )
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, cast

from flamehouse.proto import ids, ingest_pb2

Frame = tuple[str, str, int]
"""(function, file, line)."""

_KINDS = {"cpu": ingest_pb2.KIND_CPU, "wall": ingest_pb2.KIND_WALL}


class Sample(NamedTuple):
    """One sample row: a plain tuple of these fields works too."""

    time: int
    pid: int
    tid: int
    thread: str
    frames: Sequence[Frame]  # root first
    kind: str | int = "cpu"  # "cpu" / "wall" or an ingest_pb2.Kind value
    count: int = 1  # type: ignore[assignment]  # shadows tuple.count on purpose: the column name


class _Encoder:
    """Collects strings, frames and stacks, each stored once."""

    def __init__(self, batch: ingest_pb2.Batch) -> None:
        self.batch = batch
        self._strings: dict[str, int] = {}
        self._frames: dict[Frame, int] = {}
        self._stacks: dict[tuple[int, ...], int] = {}
        self.string("")

    def string(self, value: str) -> int:
        if value not in self._strings:
            self._strings[value] = len(self.batch.strings)
            self.batch.strings.append(value)
        return self._strings[value]

    def frame(self, frame: Frame) -> int:
        if frame not in self._frames:
            function, file, line = frame
            wire = self.batch.frames
            self._frames[frame] = len(wire.id)
            wire.id.append(ids.frame_id(function, file, line))
            wire.function.append(self.string(function))
            wire.file.append(self.string(file))
            wire.line.append(line)
        return self._frames[frame]

    def stack(self, frames: Sequence[Frame]) -> int:
        indices = tuple(self.frame(f) for f in frames)
        if indices not in self._stacks:
            wire = self.batch.stacks
            self._stacks[indices] = len(wire.id)
            wire.id.append(ids.stack_id([self.batch.frames.id[i] for i in indices]))
            wire.length.append(len(indices))
            wire.frame_index.extend(indices)
        return self._stacks[indices]


def make_batch(
    samples: Sequence[Sample | tuple[int, int, int, str, Sequence[Frame], str | int, int]],
    *,
    batch_id: str = "batch-1",
    host: str = "host-1",
    processes: Mapping[int, Mapping[str, str]] | None = None,
    agent_id: str = "agent-1",
    version: str = "0.1.0",
    start_time_ms: int = 1_700_000_000_000,
) -> ingest_pb2.Batch:
    """A valid batch of ``samples``; ``processes`` maps pid → labels.

    Without ``processes`` every sampled pid gets ``{"service": "svc"}``. Each process
    has ``ppid`` 1, ``start_time_ms`` as given and cmdline ``python worker-<pid>.py``.
    """
    batch = ingest_pb2.Batch(batch_id=batch_id)
    batch.agent.agent_id, batch.agent.host, batch.agent.version = agent_id, host, version
    enc = _Encoder(batch)
    if processes is None:
        processes = {s[1]: {"service": "svc"} for s in samples}
    for pid, labels in processes.items():
        proc = batch.processes.add(pid=pid, ppid=1, start_time_ms=start_time_ms)
        proc.cmdline = enc.string(f"python worker-{pid}.py")
        for name, value in labels.items():
            proc.labels.add(name=enc.string(name), value=enc.string(value))
    cols = batch.samples
    for time, pid, tid, thread, frames, kind, count in samples:
        cols.time.append(time)
        cols.pid.append(pid)
        cols.tid.append(tid)
        cols.thread_name.append(enc.string(thread))
        cols.stack_index.append(enc.stack(frames))
        cols.kind.append(_KINDS[kind] if isinstance(kind, str) else cast(ingest_pb2.Kind, kind))
        cols.count.append(count)
    return batch

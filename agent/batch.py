"""Encoding sample rows into the struct-of-arrays wire batch.

Strings are interned into one table per batch, frames and stacks are sent once
per batch with their stable ids (:mod:`flamehouse.proto.ids`), and samples are
packed columns, so the collector decodes a batch with a few list reads.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flamehouse import __version__
from flamehouse.agent.model import Frame, GpuDeviceSample, GpuProcessSample, Kind, ProcessInfo, SampleRow
from flamehouse.proto import ids, ingest_pb2

_KINDS = {Kind.CPU: ingest_pb2.KIND_CPU, Kind.WALL: ingest_pb2.KIND_WALL}


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """Who is sending: stamped on every batch."""

    agent_id: str
    host: str
    version: str = __version__

    @staticmethod
    def local(host: str = "") -> AgentIdentity:
        name = host or socket.gethostname()
        return AgentIdentity(agent_id=f"{name}-{os.getpid()}-{int(time.time())}", host=name)


def new_batch_id() -> str:
    """A fresh batch id; a batch keeps it on every retry."""
    return uuid.uuid4().hex


class _Builder:
    """Fills one batch, interning strings, frames and stacks."""

    def __init__(self, agent: AgentIdentity, batch_id: str | None) -> None:
        batch = self.batch = ingest_pb2.Batch(batch_id=batch_id or new_batch_id())
        batch.agent.agent_id, batch.agent.host, batch.agent.version = agent.agent_id, agent.host, agent.version
        self.strings: dict[str, int] = {"": 0}
        batch.strings.append("")
        self.frames: dict[Frame, int] = {}
        self.stacks: dict[tuple[Frame, ...], int] = {}

    def string(self, text: str) -> int:
        index = self.strings.get(text)
        if index is None:
            index = self.strings[text] = len(self.strings)
            self.batch.strings.append(text)
        return index

    def frame(self, frame: Frame) -> int:
        index = self.frames.get(frame)
        if index is None:
            index = self.frames[frame] = len(self.frames)
            cols = self.batch.frames
            cols.id.append(ids.frame_id(frame.function, frame.file, frame.line))
            cols.function.append(self.string(frame.function))
            cols.file.append(self.string(frame.file))
            cols.line.append(frame.line)
        return index

    def stack(self, stack: tuple[Frame, ...]) -> int:
        index = self.stacks.get(stack)
        if index is None:
            index = self.stacks[stack] = len(self.stacks)
            frame_indexes = [self.frame(f) for f in stack]
            cols = self.batch.stacks
            cols.id.append(ids.stack_id([self.batch.frames.id[i] for i in frame_indexes]))
            cols.length.append(len(frame_indexes))
            cols.frame_index.extend(frame_indexes)
        return index

    def process(self, info: ProcessInfo) -> None:
        proc = self.batch.processes.add(
            pid=info.pid, ppid=info.ppid, start_time_ms=info.start_time_ms, cmdline=self.string(info.cmdline)
        )
        for name, value in sorted(info.labels.items()):
            proc.labels.add(name=self.string(name), value=self.string(value))


def encode(
    rows: Iterable[SampleRow],
    processes: Iterable[ProcessInfo],
    agent: AgentIdentity,
    batch_id: str | None = None,
) -> ingest_pb2.Batch:
    """One wire batch holding ``rows``; every row's pid must be among ``processes``."""
    builder = _Builder(agent, batch_id)
    batch = builder.batch
    for info in processes:
        builder.process(info)
    cols = batch.samples
    for row in rows:
        cols.time.append(row.time)
        cols.pid.append(row.pid)
        cols.tid.append(row.tid)
        cols.thread_name.append(builder.string(row.thread))
        cols.stack_index.append(builder.stack(row.stack))
        cols.kind.append(_KINDS[row.kind])
        cols.count.append(row.count)
    return batch


def encode_gpu(
    devices: Iterable[GpuDeviceSample],
    processes: Iterable[GpuProcessSample],
    agent: AgentIdentity,
    batch_id: str | None = None,
) -> ingest_pb2.Batch:
    """One wire batch holding GPU metrics of this host (and no stack samples)."""
    builder = _Builder(agent, batch_id)
    batch = builder.batch
    dev = batch.gpu_devices
    for d in devices:
        dev.time.append(d.time)
        dev.index.append(d.index)
        dev.uuid.append(builder.string(d.uuid))
        dev.name.append(builder.string(d.name))
        dev.sm_util.append(d.sm_util)
        dev.mem_util.append(d.mem_util)
        dev.mem_used_bytes.append(d.mem_used_bytes)
        dev.mem_total_bytes.append(d.mem_total_bytes)
        dev.power_watts.append(d.power_watts)
        dev.temperature_c.append(d.temperature_c)
        dev.sm_clock_mhz.append(d.sm_clock_mhz)
    proc = batch.gpu_processes
    for p in processes:
        proc.time.append(p.time)
        proc.pid.append(p.pid)
        proc.index.append(p.index)
        proc.uuid.append(builder.string(p.uuid))
        proc.sm_util.append(p.sm_util)
        proc.mem_used_bytes.append(p.mem_used_bytes)
    return batch


def batch_samples(batch: ingest_pb2.Batch) -> int:
    """Samples (sum of counts) a batch carries."""
    return sum(batch.samples.count)

"""Validation of pushed batches: the wire contract, checked before anything is stored.

:func:`validate` is pure. It checks the wire contract (``ingest.proto``), recomputes
every frame and stack id with :mod:`flamehouse.proto.ids`, and returns plain frozen
column tuples (:class:`DecodedBatch`). A bad batch raises
:class:`~flamehouse.collector.InvalidBatch` whose message names the offending field
and index and says how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

import numpy as np

from flamehouse.collector import InvalidBatch
from flamehouse.proto import ids, ingest_pb2

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Process labels stored in their own columns; every other label goes to the ``labels`` map.
COLUMN_LABELS = ("service", "job", "rank", "host")
#: Process labels dropped: they duplicate fields of ``Process`` (and columns of ``processes``).
DROPPED_LABELS = frozenset({"pid", "ppid"})
#: Proto ``Kind`` values equal the ``Enum8`` values of ``samples.kind`` (cpu = 1, wall = 2).
KINDS = frozenset({ingest_pb2.KIND_CPU, ingest_pb2.KIND_WALL})
MAX_BATCH_ID_CHARS = 128
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds a batch must respect; a batch over any of them is rejected whole."""

    #: Most sample rows in one batch.
    max_rows: int = 1_000_000
    #: Most frames in one stack (py-spy's default depth is far below this).
    max_frames_per_stack: int = 512
    #: Longest entry of the string table, in UTF-8 bytes (agents truncate cmdlines).
    max_string_bytes: int = 4096
    #: Most labels on one process.
    max_labels_per_process: int = 64
    #: Largest gRPC message accepted, in bytes (enforced by the gRPC server).
    max_message_bytes: int = 64 * 1024 * 1024
    #: How far in the future a sample or process start may lie (agent clock skew), seconds.
    max_clock_skew_s: int = 3600


@dataclass(frozen=True, slots=True)
class FrameColumns:
    """The batch's frames, one element per frame, in wire order."""

    frame_id: tuple[int, ...]
    function_id: tuple[int, ...]
    function: tuple[str, ...]
    file: tuple[str, ...]
    line: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StackColumns:
    """The batch's stacks, root first: frame ids (per line) and function ids per stack."""

    stack_id: tuple[int, ...]
    frame_ids: tuple[tuple[int, ...], ...]
    function_ids: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process with its labels already split into columns and the free-form rest."""

    pid: int
    ppid: int
    #: Unix milliseconds; with ``pid`` identifies the process.
    start_time_ms: int
    cmdline: str
    #: The ``host`` label when set, else the agent's host.
    host: str
    service: str
    job: str
    rank: str
    #: Every other label (``pid``/``ppid`` labels dropped).
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Sample rows, one element per row; stack and thread resolved from their indices."""

    time: tuple[int, ...]
    pid: tuple[int, ...]
    tid: tuple[int, ...]
    thread: tuple[str, ...]
    stack_id: tuple[int, ...]
    #: ``ingest_pb2.KIND_CPU`` (1) or ``KIND_WALL`` (2).
    kind: tuple[int, ...]
    count: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch that passed :func:`validate`, as plain data."""

    batch_id: str
    agent_id: str
    agent_version: str
    frames: FrameColumns
    stacks: StackColumns
    processes: tuple[ProcessInfo, ...]
    samples: SampleColumns
    #: Sum of ``samples.count``: py-spy samples carried by the batch.
    sample_total: int

    @property
    def rows(self) -> int:
        return len(self.samples.time)


# --------------------------------------------------------------------------- validation


class VerifiedIds:
    """Frames and stacks whose ids were already checked, so that later batches skip the hashing.

    A steady agent sends the same few hundred stacks in every window; recomputing their
    BLAKE2b ids was ~90 % of validation (14 µs per sample row in bench/ingest.py's workload).
    An id is trusted again only for exactly the content it was checked with; past
    ``capacity`` entries the memory is dropped and filled again. Safe to share between
    threads (plain dict operations under the GIL).
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        #: (frame id, function, file, line) → function id
        self.frames: dict[tuple[int, str, str, int], int] = {}
        #: stack id → (frame ids, function ids, frame ids as uint64 bytes), root first
        self.stacks: dict[int, tuple[tuple[int, ...], tuple[int, ...], bytes]] = {}

    def _room(self, table: dict[Any, Any]) -> None:
        if len(table) >= self.capacity:
            table.clear()


def validate(
    batch: ingest_pb2.Batch,
    limits: IngestLimits,
    *,
    now: float,
    ttl_days: int,
    known: VerifiedIds | None = None,
) -> DecodedBatch:
    """Checks ``batch`` against the wire contract and ``limits``; returns it decoded.

    ``now`` (unix seconds) and ``ttl_days`` bound sample times to what the store keeps:
    ``[now - ttl_days, now + limits.max_clock_skew_s]``. ``known`` remembers the frame and
    stack ids checked so far (the result is the same with or without it). Raises
    :class:`InvalidBatch`.
    """
    known = known if known is not None else VerifiedIds()
    _check_header(batch)
    strings = _check_strings(batch.strings, limits)
    frames = _decode_frames(batch.frames, strings, known)
    stacks = _decode_stacks(batch.stacks, frames, limits, known)
    processes = _decode_processes(batch, strings, limits, now)
    samples = _decode_samples(batch.samples, strings, stacks, processes, limits=limits, now=now, ttl_days=ttl_days)
    return DecodedBatch(
        batch_id=batch.batch_id,
        agent_id=batch.agent.agent_id,
        agent_version=batch.agent.version,
        frames=frames,
        stacks=stacks,
        processes=processes,
        samples=samples,
        sample_total=sum(samples.count),
    )


def _check_header(batch: ingest_pb2.Batch) -> None:
    bid = batch.batch_id
    if not bid:
        raise InvalidBatch("batch_id is empty: set a unique id per batch and reuse it on every retry")
    if len(bid) > MAX_BATCH_ID_CHARS:
        raise InvalidBatch(f"batch_id is {len(bid)} characters, over the limit of {MAX_BATCH_ID_CHARS}")
    if not bid.isprintable():
        raise InvalidBatch(f"batch_id {bid!r} has non-printable characters: use e.g. a UUID")
    if not batch.agent.host:
        raise InvalidBatch("agent.host is empty: set it to the host name the samples come from")


def _check_strings(table: Sequence[str], limits: IngestLimits) -> list[str]:
    strings = list(table)
    if strings and strings[0]:
        raise InvalidBatch(f'strings[0]={strings[0]!r} must be "": index 0 of the string table is reserved')
    cap = limits.max_string_bytes
    for i, s in enumerate(strings):
        if len(s) * 4 > cap and (size := len(s.encode("utf-8"))) > cap:
            raise InvalidBatch(f"strings[{i}] is {size} bytes, over the limit of {cap}: truncate it in the agent")
    return strings


def check_lengths(message: str, columns: Mapping[str, Sized]) -> int:
    sizes = {name: len(col) for name, col in columns.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise InvalidBatch(f"{message} columns differ in length ({listed}): send one element per row in each")
    return next(iter(sizes.values()), 0)


def check_index(column: Sequence[int] | np.ndarray, size: int, name: str, noun: str) -> None:
    """Raises when an entry of ``column`` (a list or an integer array) is not below ``size``."""
    if len(column) and int(column.max() if isinstance(column, np.ndarray) else max(column)) >= size:
        i = next(i for i, v in enumerate(column) if v >= size)
        raise InvalidBatch(f"{name}[{i}]={column[i]} is out of range: the batch has {size} {noun}")


def first_bad(column: Sequence[Any], bad: Callable[[Any], bool]) -> int:
    return next(i for i, v in enumerate(column) if bad(v))


def _decode_frames(wire: ingest_pb2.Frames, strings: list[str], known: VerifiedIds) -> FrameColumns:
    frame_id, fn_index, file_index, line = (list(c) for c in (wire.id, wire.function, wire.file, wire.line))
    check_lengths("frames", {"id": frame_id, "function": fn_index, "file": file_index, "line": line})
    check_index(fn_index, len(strings), "frames.function", "strings")
    check_index(file_index, len(strings), "frames.file", "strings")
    function = list(map(strings.__getitem__, fn_index))
    file = list(map(strings.__getitem__, file_index))
    # One look-up per frame, keyed by its whole content: a hit is a frame checked before.
    contents = list(zip(frame_id, function, file, line, strict=True))
    checked = known.frames
    function_id: list[int | None] = list(map(checked.get, contents))
    if None in function_id:
        for i, content in enumerate(contents):
            if function_id[i] is not None:
                continue
            fid, fn, fl, ln = content
            if (expected := ids.frame_id(fn, fl, ln)) != fid:
                raise InvalidBatch(
                    f"frames.id[{i}]={fid} does not match ids.frame_id({fn!r}, {fl!r}, {ln})={expected}: "
                    "compute ids with flamehouse.proto.ids"
                )
            function_id[i] = fn_id = ids.function_id(fn, fl)
            known._room(checked)
            checked[content] = fn_id
    return FrameColumns(tuple(frame_id), tuple(cast(list[int], function_id)), tuple(function), tuple(file), tuple(line))


def _decode_stacks(
    wire: ingest_pb2.Stacks, frames: FrameColumns, limits: IngestLimits, known: VerifiedIds
) -> StackColumns:
    stack_id, length = list(wire.id), list(wire.length)
    frame_index = np.array(wire.frame_index, dtype=np.int64)  # a packed column: read without Python ints
    check_lengths("stacks", {"id": stack_id, "length": length})
    deepest = limits.max_frames_per_stack
    if length and (min(length) < 1 or max(length) > deepest):
        i = first_bad(length, lambda v: not 1 <= v <= deepest)
        raise InvalidBatch(f"stacks.length[{i}]={length[i]} must be between 1 and {deepest} frames")
    if sum(length) != len(frame_index):
        raise InvalidBatch(
            f"stacks.length sums to {sum(length)} but stacks.frame_index has {len(frame_index)} entries: "
            "stack i owns the next length[i] entries of frame_index"
        )
    check_index(frame_index, len(frames.frame_id), "stacks.frame_index", "frames")
    # The frame ids each stack owns, all stacks end to end, as raw uint64 bytes.
    owned = np.array(frames.frame_id, dtype=np.uint64)[frame_index] if len(frame_index) else np.zeros(0, np.uint64)
    checked = known.stacks
    cached = list(map(checked.get, stack_id))
    if None not in cached:
        # Every stack id was checked before: the batch is verified when each stack has the length
        # and owns the frame ids it was checked with (all compared at once, in C).
        hits = cast(list[tuple[tuple[int, ...], tuple[int, ...], bytes]], cached)
        if [len(h[0]) for h in hits] == length and b"".join(map(itemgetter(2), hits)) == owned.tobytes():
            return StackColumns(tuple(stack_id), tuple(h[0] for h in hits), tuple(h[1] for h in hits))
    frame_ids: list[tuple[int, ...]] = []
    function_ids: list[tuple[int, ...]] = []
    offset = 0
    function_of = frames.function_id.__getitem__
    for i, (sid, n, seen) in enumerate(zip(stack_id, length, cached, strict=True)):
        span = owned[offset : offset + n]
        raw = span.tobytes()
        if seen is not None and seen[2] == raw:
            frame_ids.append(seen[0])
            function_ids.append(seen[1])
        else:
            fids = tuple(span.tolist())
            if (expected := ids.stack_id(fids)) != sid:
                raise InvalidBatch(
                    f"stacks.id[{i}]={sid} does not match ids.stack_id(its {n} frame ids, root first)={expected}: "
                    "compute ids with flamehouse.proto.ids"
                )
            fnids = tuple(map(function_of, frame_index[offset : offset + n].tolist()))
            frame_ids.append(fids)
            function_ids.append(fnids)
            known._room(checked)
            checked[sid] = (fids, fnids, raw)
        offset += n
    return StackColumns(tuple(stack_id), tuple(frame_ids), tuple(function_ids))


def _decode_processes(
    batch: ingest_pb2.Batch, strings: list[str], limits: IngestLimits, now: float
) -> tuple[ProcessInfo, ...]:
    seen: dict[int, int] = {}
    decoded: list[ProcessInfo] = []
    latest_ms = int((now + limits.max_clock_skew_s) * 1000)
    for i, proc in enumerate(batch.processes):
        where = f"processes[{i}] (pid {proc.pid})"
        if proc.pid in seen:
            raise InvalidBatch(f"{where} repeats processes[{seen[proc.pid]}]: send each pid once per batch")
        seen[proc.pid] = i
        if not 0 <= proc.start_time_ms <= latest_ms:
            raise InvalidBatch(f"{where}.start_time_ms={proc.start_time_ms} is not a past unix time in milliseconds")
        check_index([proc.cmdline], len(strings), f"processes[{i}].cmdline", "strings")
        labels = _decode_labels(proc, where, strings, limits)
        decoded.append(
            ProcessInfo(
                pid=proc.pid,
                ppid=proc.ppid,
                start_time_ms=proc.start_time_ms,
                cmdline=strings[proc.cmdline],
                host=labels.pop("host", "") or batch.agent.host,
                service=labels.pop("service"),
                job=labels.pop("job", ""),
                rank=labels.pop("rank", ""),
                labels={k: v for k, v in labels.items() if k not in DROPPED_LABELS},
            )
        )
    return tuple(decoded)


def _decode_labels(proc: ingest_pb2.Process, where: str, strings: list[str], limits: IngestLimits) -> dict[str, str]:
    if len(proc.labels) > limits.max_labels_per_process:
        raise InvalidBatch(f"{where} has {len(proc.labels)} labels, over the limit of {limits.max_labels_per_process}")
    labels: dict[str, str] = {}
    for j, label in enumerate(proc.labels):
        check_index([label.name, label.value], len(strings), f"{where}.labels[{j}].name/value", "strings")
        name = strings[label.name]
        if not LABEL_NAME.match(name):
            raise InvalidBatch(f"{where}.labels[{j}] name {name!r} must match {LABEL_NAME.pattern}")
        if name in labels:
            raise InvalidBatch(f"{where} has label {name!r} twice: send each label once")
        labels[name] = strings[label.value]
    if not labels.get("service"):
        raise InvalidBatch(f"{where} has no service label: run the agent with --label service=NAME")
    return labels


def _decode_samples(
    wire: ingest_pb2.Samples,
    strings: list[str],
    stacks: StackColumns,
    processes: tuple[ProcessInfo, ...],
    *,
    limits: IngestLimits,
    now: float,
    ttl_days: int,
) -> SampleColumns:
    # Packed columns read straight into arrays (no Python int per element); checked whole.
    cols = {
        name: np.array(getattr(wire, name), dtype=np.int64)
        for name in ("time", "pid", "thread_name", "stack_index", "kind", "count")
    }
    cols["tid"] = np.array(wire.tid, dtype=np.uint64)
    rows = check_lengths("samples", cols)
    if rows > limits.max_rows:
        raise InvalidBatch(f"samples has {rows} rows, over the limit of {limits.max_rows}: send smaller batches")
    if not rows:
        return SampleColumns(time=(), pid=(), tid=(), thread=(), stack_id=(), kind=(), count=())
    check_index(cols["thread_name"], len(strings), "samples.thread_name", "strings")
    check_index(cols["stack_index"], len(stacks.stack_id), "samples.stack_index", "stacks")
    kind, count, pid, ts = cols["kind"], cols["count"], cols["pid"], cols["time"]
    if not set(np.unique(kind).tolist()) <= KINDS:
        i = first_bad(kind.tolist(), lambda v: v not in KINDS)
        raise InvalidBatch(f"samples.kind[{i}]={kind[i]} must be KIND_CPU (1) or KIND_WALL (2)")
    if int(count.min()) < 1:
        i = first_bad(count.tolist(), lambda v: v < 1)
        raise InvalidBatch(f"samples.count[{i}]={count[i]} must be >= 1: drop rows without samples")
    known = {p.pid for p in processes}
    if not set(pid.tolist()) <= known:
        i = first_bad(pid.tolist(), lambda v: v not in known)
        raise InvalidBatch(f"samples.pid[{i}]={pid[i]} is not in processes: send a Process for every sampled pid")
    lo, hi = int(now) - ttl_days * _DAY_S, int(now) + limits.max_clock_skew_s
    if int(ts.min()) < lo or int(ts.max()) > hi:
        i = first_bad(ts.tolist(), lambda v: not lo <= v <= hi)
        raise InvalidBatch(
            f"samples.time[{i}]={ts[i]} is outside [{lo}, {hi}] (the last {ttl_days} days up to "
            f"{limits.max_clock_skew_s} s ahead): send unix seconds and check the agent's clock"
        )
    stack_ids = np.array(stacks.stack_id, dtype=np.uint64)[cols["stack_index"]]
    return SampleColumns(
        time=tuple(ts.tolist()),
        pid=tuple(pid.tolist()),
        tid=tuple(cols["tid"].tolist()),
        thread=tuple(map(strings.__getitem__, cols["thread_name"].tolist())),
        stack_id=tuple(stack_ids.tolist()),
        kind=tuple(kind.tolist()),
        count=tuple(count.tolist()),
    )

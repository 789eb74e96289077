"""Ingest: validate a pushed :class:`~flamehouse.proto.ingest_pb2.Batch` and store it.

The path of one batch is ``proto → validate() → DecodedBatch → Ingestor → store``:

* :func:`~flamehouse.collector.validate.validate` (pure, in its own module) checks the
  wire contract and returns plain frozen column tuples, or raises
  :class:`~flamehouse.collector.InvalidBatch` saying what to fix.
* :class:`Ingestor` writes frames, stacks and processes (Replacing tables, so a repeat
  is harmless) and the samples last, with ``batch_id`` as ClickHouse's insert
  deduplication token: a retried batch whose samples were stored is not counted twice,
  even across collector restarts. A bounded in-memory set of recent batch ids lets this
  process answer ``duplicate=True`` without touching the store.

Every batch is counted in :class:`IngestCounters`:
``received == stored + duplicate + rejected + failed`` once no push is in flight.

DateTime columns are sent as integers (unix seconds for ``DateTime``, unix
milliseconds for ``DateTime64(3)``): clickhouse-connect writes them verbatim, whereas a
naive ``datetime`` would be read in the server's local time zone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from flamehouse.collector import InvalidBatch, StoreError
from flamehouse.collector.gpu_batch import GpuColumns, decode_gpu
from flamehouse.collector.store import Store
from flamehouse.collector.validate import MAX_BATCH_ID_CHARS, DecodedBatch, IngestLimits, validate
from flamehouse.proto import ingest_pb2

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- counters


@dataclass
class IngestCounters:
    """What ingest received and did with it; safe to update from many threads.

    ``batches_received == batches_stored + batches_duplicate + batches_rejected +
    batches_failed`` whenever no push is in flight.
    """

    #: Pushes that reached the ingestor.
    batches_received: int = 0
    #: Batches validated and written.
    batches_stored: int = 0
    #: Batches whose id this process had already stored; nothing written.
    batches_duplicate: int = 0
    #: Batches that broke the wire contract or a limit; nothing written.
    batches_rejected: int = 0
    #: Batches the store failed to write (the agent retries them).
    batches_failed: int = 0
    #: Sample rows written.
    rows_stored: int = 0
    #: py-spy samples (sum of counts) written.
    samples_stored: int = 0
    #: GPU device and per-process rows written.
    gpu_rows_stored: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        """Adds ``deltas`` (field name → amount) atomically."""
        unknown = deltas.keys() - _COUNTER_NAMES
        if unknown:
            raise TypeError(f"unknown counters: {sorted(unknown)}")
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of every counter."""
        with self._lock:
            return {name: getattr(self, name) for name in _COUNTER_NAMES_ORDERED}

    def register(self, registry: CollectorRegistry) -> None:
        """Exposes the counters as ``flamehouse_collector_<name>_total`` in ``registry``."""
        registry.register(_CountersCollector(self))


_COUNTER_NAMES_ORDERED = tuple(f.name for f in fields(IngestCounters) if not f.name.startswith("_"))
_COUNTER_NAMES = frozenset(_COUNTER_NAMES_ORDERED)


class _CountersCollector(Collector):
    """Reads :class:`IngestCounters` at scrape time."""

    def __init__(self, counters: IngestCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in self._counters.snapshot().items():
            yield CounterMetricFamily(f"flamehouse_collector_{name}", f"Ingest: {name.replace('_', ' ')}.", value=value)

    def describe(self) -> Iterator[CounterMetricFamily]:
        return self.collect()


class Throttle:
    """Lets an event through at most once per ``interval_s``; counts the ones it held back.

    Used to rate-limit repeated warnings (a misconfigured agent retries forever).
    """

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._held = 0

    def allow(self) -> int | None:
        """``None`` to suppress the event, else how many were suppressed since the last one."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return None
            held, self._held, self._next = self._held, 0, now + self._interval
            return held


class _RecentIds:
    """A bounded, thread-safe LRU set (batch ids, or ids of rows already written)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, batch_id: Hashable) -> bool:
        with self._lock:
            if batch_id in self._ids:
                self._ids.move_to_end(batch_id)
                return True
            return False

    def add(self, *batch_ids: Hashable) -> None:
        with self._lock:
            for batch_id in batch_ids:
                self._ids[batch_id] = None
                self._ids.move_to_end(batch_id)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)


# --------------------------------------------------------------------------- ingestor

FRAME_COLUMNS = ("frame_id", "function_id", "function", "file", "line", "last_seen")
STACK_COLUMNS = ("stack_id", "frame_ids", "function_ids", "last_seen")
PROCESS_COLUMNS = (
    "host", "pid", "start_time", "ppid", "cmdline", "service", "job", "rank",
    "labels", "agent_id", "agent_version", "last_seen",
)  # fmt: skip
SAMPLE_COLUMNS = (
    "ts", "service", "job", "host", "pid", "rank", "thread", "tid",
    "kind", "labels", "stack_id", "count", "batch_id",
)  # fmt: skip


GPU_DEVICE_COLUMNS = (
    "ts", "host", "gpu_index", "gpu_uuid", "gpu_name", "sm_util", "mem_util", "mem_used", "mem_total",
    "power_w", "temperature_c", "sm_clock_mhz", "batch_id",
)  # fmt: skip
GPU_PROCESS_COLUMNS = ("ts", "host", "pid", "gpu_index", "gpu_uuid", "sm_util", "mem_used", "batch_id")


class Ingestor:
    """Validates pushed batches and writes them to the store, at most once per ``batch_id``."""

    def __init__(
        self,
        store: Store,
        limits: IngestLimits | None = None,
        counters: IngestCounters | None = None,
        clock: Callable[[], float] = time.time,
        *,
        recent_ids: int = 100_000,
        known_rows: int = 1_000_000,
    ) -> None:
        self.store = store
        self.limits = limits or IngestLimits()
        self.counters = counters if counters is not None else IngestCounters()
        self._clock = clock
        self._recent = _RecentIds(recent_ids)
        # Frames, stacks and processes this process wrote lately: a steady agent sends the
        # same ones every window, and skipping them turns four inserts per batch into one.
        self._written = _RecentIds(known_rows)
        self._reject_log = Throttle()  # one per cause, so a flood of one hides none of the other
        self._failure_log = Throttle()

    def push(self, batch: ingest_pb2.Batch) -> ingest_pb2.Ack:
        """Stores ``batch`` and acknowledges it.

        A ``batch_id`` this process already stored is acknowledged as a duplicate without
        being decoded again. After a restart that cache is empty: ClickHouse still drops
        the repeated samples, but the ack then reports them as stored (``duplicate=False``).

        Raises :class:`InvalidBatch` (nothing written) or :class:`StoreError` (retry the
        same batch: the parts already written are deduplicated).
        """
        self.counters.add(batches_received=1)
        bid = batch.batch_id
        if bid and bid in self._recent:
            self.counters.add(batches_duplicate=1)
            log.debug("duplicate batch batch_id=%s host=%s", bid, batch.agent.host)
            return ingest_pb2.Ack(batch_id=bid, rows=0, samples=0, duplicate=True)
        now = self._clock()
        try:
            decoded = validate(batch, self.limits, now=now, ttl_days=self.store.config.ttl_days)
            gpu = decode_gpu(batch, self.limits, now=now, ttl_days=self.store.config.ttl_days)
        except InvalidBatch as exc:
            self.counters.add(batches_rejected=1)
            _warn_throttled(
                self._reject_log,
                "batch rejected batch_id=%r host=%r reason=%s",
                bid[:MAX_BATCH_ID_CHARS],
                batch.agent.host,
                exc,
            )
            raise
        try:
            self._write(decoded, int(now))
            self._write_gpu(gpu, batch.agent.host, bid)
        except StoreError as exc:
            self.counters.add(batches_failed=1)
            _warn_throttled(self._failure_log, "batch not stored batch_id=%s error=%s", bid, exc)
            raise
        self._recent.add(bid)
        self.counters.add(
            batches_stored=1, rows_stored=decoded.rows, samples_stored=decoded.sample_total, gpu_rows_stored=gpu.rows
        )
        log.debug("batch stored batch_id=%s rows=%d samples=%d", bid, decoded.rows, decoded.sample_total)
        return ingest_pb2.Ack(batch_id=bid, rows=decoded.rows, samples=decoded.sample_total, duplicate=False)

    def _write(self, batch: DecodedBatch, now: int) -> None:
        """Inserts the batch; samples last, so a failure leaves no samples to double count.

        Frames, stacks and processes already written by this process (processes: within
        the current minute, so ``last_seen`` stays fresh) are skipped; after a restart they
        are written again, which the Replacing tables absorb.
        """
        day = datetime.fromtimestamp(now, UTC).date()
        frames, stacks = batch.frames, batch.stacks
        new_frames = [i for i, fid in enumerate(frames.frame_id) if ("f", fid) not in self._written]
        if new_frames:
            cols = (frames.frame_id, frames.function_id, frames.function, frames.file, frames.line)
            self.store.insert("frames", FRAME_COLUMNS, [*_pick(cols, new_frames), [day] * len(new_frames)])
        new_stacks = [i for i, sid in enumerate(stacks.stack_id) if ("s", sid) not in self._written]
        if new_stacks:
            scols = (stacks.stack_id, stacks.frame_ids, stacks.function_ids)
            self.store.insert("stacks", STACK_COLUMNS, [*_pick(scols, new_stacks), [day] * len(new_stacks)])
        minute = now // 60
        fresh = [
            i
            for i, p in enumerate(batch.processes)
            if ("p", p.host, p.pid, p.start_time_ms, minute) not in self._written
        ]
        if fresh:
            self.store.insert("processes", PROCESS_COLUMNS, _pick(_process_columns(batch, now), fresh))
        if batch.rows:
            self.store.insert("samples", SAMPLE_COLUMNS, _sample_columns(batch), dedup_token=batch.batch_id)
        self._written.add(
            *(("f", frames.frame_id[i]) for i in new_frames),
            *(("s", stacks.stack_id[i]) for i in new_stacks),
            *(
                ("p", batch.processes[i].host, batch.processes[i].pid, batch.processes[i].start_time_ms, minute)
                for i in fresh
            ),
        )

    def _write_gpu(self, gpu: GpuColumns, host: str, batch_id: str) -> None:
        """Inserts GPU rows, deduplicated by ``batch_id`` like the samples."""
        dev, proc = gpu.devices, gpu.processes
        if dev.time:
            hosts, bids = [host] * len(dev.time), [batch_id] * len(dev.time)
            columns = (
                dev.time, hosts, dev.index, dev.uuid, dev.name, dev.sm_util, dev.mem_util, dev.mem_used,
                dev.mem_total, dev.power_w, dev.temperature_c, dev.sm_clock_mhz, bids,
            )  # fmt: skip
            self.store.insert("gpu_devices", GPU_DEVICE_COLUMNS, columns, dedup_token=batch_id)
        if proc.time:
            hosts, bids = [host] * len(proc.time), [batch_id] * len(proc.time)
            pcolumns = (proc.time, hosts, proc.pid, proc.index, proc.uuid, proc.sm_util, proc.mem_used, bids)
            self.store.insert("gpu_processes", GPU_PROCESS_COLUMNS, pcolumns, dedup_token=batch_id)


def _warn_throttled(throttle: Throttle, message: str, *args: object) -> None:
    held = throttle.allow()
    if held is not None:
        log.warning(message + " suppressed=%d", *args, held)


def _pick(columns: Sequence[Sequence[Any]], rows: list[int]) -> list[list[Any]]:
    """The given rows of each column."""
    return [[col[i] for i in rows] for col in columns]


def _process_columns(batch: DecodedBatch, now: int) -> list[Sequence[Any]]:
    procs = batch.processes
    return [
        [p.host for p in procs],
        [p.pid for p in procs],
        [p.start_time_ms for p in procs],  # DateTime64(3): integer milliseconds, written verbatim
        [p.ppid for p in procs],
        [p.cmdline for p in procs],
        [p.service for p in procs],
        [p.job for p in procs],
        [p.rank for p in procs],
        [dict(p.labels) for p in procs],
        [batch.agent_id] * len(procs),
        [batch.agent_version] * len(procs),
        [now] * len(procs),
    ]


def _sample_columns(batch: DecodedBatch) -> list[Sequence[Any]]:
    s = batch.samples
    by_pid = {p.pid: p for p in batch.processes}
    procs = [by_pid[pid] for pid in s.pid]
    labels = {p.pid: dict(p.labels) for p in batch.processes}
    return [
        s.time,  # DateTime: integer unix seconds, written verbatim
        [p.service for p in procs],
        [p.job for p in procs],
        [p.host for p in procs],
        s.pid,
        [p.rank for p in procs],
        s.thread,
        s.tid,
        s.kind,  # Enum8 values equal the proto Kind values
        [labels[pid] for pid in s.pid],
        s.stack_id,
        s.count,
        [batch.batch_id] * len(s.time),
    ]

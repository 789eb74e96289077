"""Group commit: the batches pushed at the same time go into the store as one insert per table.

Every insert into chDB has a large fixed cost, and every insert into ``samples`` also runs the
rollup views, so one insert per pushed batch (~500 rows) caps a collector at a few thousand
rows per second (BENCHMARKS.md, ingest). :class:`GroupWriter` lets the pushes that arrive
while an insert runs wait, then writes all of them together: under light load a push is
written alone and at once; under heavy load the groups grow by themselves, up to
``max_rows`` rows, and no push waits for a timer.

The writer is leader-follower, without a thread of its own: the first waiting push whose
group is next writes it for everyone in it, then hands over; a push returns once its own
batch is written or has failed.

Deduplication per batch. ClickHouse's ``insert_deduplication_token`` covers a whole insert,
and a retried batch need not land in the same group as its first try, so the writer checks
batch ids itself:

* ids stored by this process are remembered (a bounded LRU, checked by the ingestor);
* a batch that says it is a first try (``Batch.attempt == 1``) cannot have been stored
  before and is written without a look-up;
* any other batch (a retry, a batch from the agent's disk spool, or an agent that predates
  the field) is looked up in the store by its host, processes, time range and ``batch_id``
  (a primary-key range, milliseconds) before it is written: stored samples make it a
  duplicate, stored GPU rows make the writer skip them.

Within a group GPU rows are written before samples, and samples last: a group that fails
part-way leaves no samples to count twice, and its retries find what was written.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flamehouse.collector.gpu_batch import GpuColumns
from flamehouse.collector.store import Store
from flamehouse.collector.validate import DecodedBatch

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

#: Settings of every insert into ``samples``. ``optimize_on_insert = 0``: the rollup views'
#: Summing tables would otherwise collapse each inserted block by its sorting key, although
#: the views' GROUP BY already did (the views took 0.41 s instead of 0.26 s per 50k-row insert
#: in bench/ingest.py's workload); readers sum() anyway because merges are eventual.
SAMPLE_INSERT_SETTINGS = {"optimize_on_insert": 0}

#: Rows per grouped insert at most: bounds the memory of one insert and the wait of one push.
DEFAULT_MAX_GROUP_ROWS = 200_000


class RecentIds:
    """A bounded, thread-safe LRU set (batch ids, or ids of rows already written)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: Hashable) -> bool:
        with self._lock:
            if item in self._ids:
                self._ids.move_to_end(item)
                return True
            return False

    def add(self, *items: Hashable) -> None:
        self.extend(items)

    def extend(self, items: Iterable[Hashable]) -> None:
        with self._lock:
            for item in items:
                self._ids[item] = None
                self._ids.move_to_end(item)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)


@dataclass(eq=False)
class Pending:
    """One validated batch waiting for its group to be written."""

    decoded: DecodedBatch
    gpu: GpuColumns
    #: The agent's host (GPU rows carry no process, so they are keyed by it).
    host: str
    #: False for a batch that says it is a first try: nothing to look up.
    check_store: bool
    #: Set by the writer: the store already held this batch; nothing was written.
    duplicate: bool = False
    #: Set by the writer when the group failed: a StoreError (retry) or a bug.
    error: Exception | None = None
    done: bool = False
    _skip_gpu: bool = field(default=False, repr=False)

    @property
    def batch_id(self) -> str:
        return self.decoded.batch_id

    @property
    def rows(self) -> int:
        return self.decoded.rows + self.gpu.rows


class GroupWriter:
    """Writes :class:`Pending` batches to the store, grouping concurrent ones; thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        count: Callable[..., None] = lambda **_: None,
        max_rows: int = DEFAULT_MAX_GROUP_ROWS,
        known_rows: int = 1_000_000,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.store = store
        # Counters, by keyword: insert_groups, batches_looked_up, batches_found_stored.
        self._count = count
        self._clock = clock
        self._max_rows = max_rows
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._writing = False
        # Frames, stacks and processes written lately: a steady agent sends the same ones
        # every window, and skipping them leaves one insert (samples) per group.
        self._written = RecentIds(known_rows)

    def write(self, item: Pending) -> None:
        """Returns once ``item`` is stored (``item.duplicate`` says if it already was).

        Raises :class:`StoreError` when its group could not be written (retry the batch), or
        whatever unexpected error writing its group raised.
        """
        with self._cond:
            self._queue.append(item)
            while True:
                if item.done:
                    break
                if not self._writing:
                    group = self._take()
                    self._writing = True
                    self._cond.release()
                    try:
                        self._write_group(group)
                    finally:
                        self._cond.acquire()
                        self._writing = False
                        for pending in group:
                            pending.done = True
                        self._cond.notify_all()
                    continue
                self._cond.wait()
        if item.error is not None:
            raise item.error

    def _take(self) -> list[Pending]:
        """The next group: queued batches in arrival order, up to ``max_rows`` rows (at least one batch)."""
        rows, n = 0, 0
        for pending in self._queue:
            if n and rows + pending.rows > self._max_rows:
                break
            rows += pending.rows
            n += 1
        group, self._queue = self._queue[:n], self._queue[n:]
        return group

    # ------------------------------------------------------------------ one group

    def _write_group(self, group: list[Pending]) -> None:
        try:
            todo = self._resolve_duplicates(group)
            if todo:
                self._insert(todo, int(self._clock()))
        except Exception as exc:  # every push of the group fails with it, and says so
            for pending in group:
                pending.error = exc
            return
        if todo:
            self._count(insert_groups=1)

    def _resolve_duplicates(self, group: list[Pending]) -> list[Pending]:
        """The batches of ``group`` still to write; marks the others ``duplicate``."""
        todo: list[Pending] = []
        first: dict[str, Pending] = {}
        for pending in group:
            if pending.batch_id in first:  # the same batch pushed twice at once
                pending.duplicate = True
            else:
                first[pending.batch_id] = pending
                todo.append(pending)
        suspects = [p for p in todo if p.check_store]
        if not suspects:
            return todo
        in_samples, in_gpu = self._stored(suspects)
        found = 0
        for pending in suspects:
            if pending.batch_id in in_samples or (not pending.decoded.rows and pending.batch_id in in_gpu):
                pending.duplicate = True
                found += 1
            elif pending.batch_id in in_gpu:
                pending._skip_gpu = True  # written by an earlier try whose samples failed
        self._count(batches_looked_up=len(suspects), batches_found_stored=found)
        return [p for p in todo if not p.duplicate]

    def _stored(self, suspects: list[Pending]) -> tuple[set[str], set[str]]:
        """Which of ``suspects``' ids the store holds: (in samples, in GPU tables)."""
        db = self.store.db
        in_samples: set[str] = set()
        with_rows = [p for p in suspects if p.decoded.rows]
        if with_rows:
            s = [p.decoded.samples for p in with_rows]
            found = self.store.query(
                f"SELECT DISTINCT batch_id FROM {db}.samples "
                "WHERE host IN {hosts:Array(String)} AND pid IN {pids:Array(UInt32)} "
                "AND ts >= {lo:UInt32} AND ts <= {hi:UInt32} AND batch_id IN {ids:Array(String)}",
                {
                    "hosts": sorted({proc.host for p in with_rows for proc in p.decoded.processes}),
                    "pids": sorted({pid for cols in s for pid in cols.pid}),
                    "lo": min(min(cols.time) for cols in s),
                    "hi": max(max(cols.time) for cols in s),
                    "ids": [p.batch_id for p in with_rows],
                },
            )
            in_samples = {row[0] for row in found}
        in_gpu: set[str] = set()
        with_gpu = [p for p in suspects if p.gpu.rows]
        if with_gpu:
            times = [t for p in with_gpu for t in (*p.gpu.devices.time, *p.gpu.processes.time)]
            params = {
                "hosts": sorted({p.host for p in with_gpu}),
                "lo": min(times),
                "hi": max(times),
                "ids": [p.batch_id for p in with_gpu],
            }
            found = self.store.query(
                f"SELECT batch_id FROM {db}.gpu_devices "
                "WHERE host IN {hosts:Array(String)} AND ts >= {lo:UInt32} AND ts <= {hi:UInt32} "
                "AND batch_id IN {ids:Array(String)} "
                f"UNION DISTINCT SELECT batch_id FROM {db}.gpu_processes "
                "WHERE host IN {hosts:Array(String)} AND ts >= {lo:UInt32} AND ts <= {hi:UInt32} "
                "AND batch_id IN {ids:Array(String)}",
                params,
            )
            in_gpu = {row[0] for row in found}
        return in_samples, in_gpu

    def _insert(self, group: list[Pending], now: int) -> None:
        """One insert per table for the whole group: frames, stacks, processes, GPU, samples last."""
        day = datetime.fromtimestamp(now, UTC).date()
        minute = now // 60
        frame_cols: list[list[Any]] = [[] for _ in range(5)]
        stack_cols: list[list[Any]] = [[] for _ in range(3)]
        proc_cols: list[list[Any]] = [[] for _ in PROCESS_COLUMNS]
        written: list[Hashable] = []
        seen: set[Hashable] = set()

        def fresh(key: Hashable) -> bool:
            if key in seen or key in self._written:
                return False
            seen.add(key)
            written.append(key)
            return True

        for pending in group:
            batch = pending.decoded
            frames, stacks = batch.frames, batch.stacks
            new = [i for i, fid in enumerate(frames.frame_id) if fresh(("f", fid))]
            _extend(frame_cols, (frames.frame_id, frames.function_id, frames.function, frames.file, frames.line), new)
            new = [i for i, sid in enumerate(stacks.stack_id) if fresh(("s", sid))]
            _extend(stack_cols, (stacks.stack_id, stacks.frame_ids, stacks.function_ids), new)
            new = [
                i
                for i, p in enumerate(batch.processes)
                if fresh(("p", p.host, p.pid, p.start_time_ms, minute))  # last_seen stays fresh per minute
            ]
            _extend(proc_cols, process_columns(batch, now), new)
        if frame_cols[0]:
            self.store.insert("frames", FRAME_COLUMNS, [*frame_cols, [day] * len(frame_cols[0])])
        if stack_cols[0]:
            self.store.insert("stacks", STACK_COLUMNS, [*stack_cols, [day] * len(stack_cols[0])])
        if proc_cols[0]:
            self.store.insert("processes", PROCESS_COLUMNS, proc_cols)
        token = _group_token(group)
        self._insert_gpu([p for p in group if not p._skip_gpu], token)
        sample_cols: list[list[Any]] = [[] for _ in SAMPLE_COLUMNS]
        for pending in group:
            if pending.decoded.rows:
                for target, column in zip(sample_cols, sample_columns(pending.decoded), strict=True):
                    target.extend(column)
        if sample_cols[0]:
            self.store.insert(
                "samples", SAMPLE_COLUMNS, sample_cols, dedup_token=token, settings=SAMPLE_INSERT_SETTINGS
            )
        self._written.extend(written)

    def _insert_gpu(self, group: list[Pending], token: str) -> None:
        dev_cols: list[list[Any]] = [[] for _ in GPU_DEVICE_COLUMNS]
        proc_cols: list[list[Any]] = [[] for _ in GPU_PROCESS_COLUMNS]
        for pending in group:
            dev, proc, host, bid = pending.gpu.devices, pending.gpu.processes, pending.host, pending.batch_id
            if dev.time:
                n = len(dev.time)
                columns: tuple[Sequence[Any], ...] = (
                    dev.time, [host] * n, dev.index, dev.uuid, dev.name, dev.sm_util, dev.mem_util, dev.mem_used,
                    dev.mem_total, dev.power_w, dev.temperature_c, dev.sm_clock_mhz, [bid] * n,
                )  # fmt: skip
                for target, column in zip(dev_cols, columns, strict=True):
                    target.extend(column)
            if proc.time:
                n = len(proc.time)
                pcolumns = (proc.time, [host] * n, proc.pid, proc.index, proc.uuid, proc.sm_util, proc.mem_used)
                for target, column in zip(proc_cols, (*pcolumns, [bid] * n), strict=True):
                    target.extend(column)
        if dev_cols[0]:
            self.store.insert("gpu_devices", GPU_DEVICE_COLUMNS, dev_cols, dedup_token=token)
        if proc_cols[0]:
            self.store.insert("gpu_processes", GPU_PROCESS_COLUMNS, proc_cols, dedup_token=token)


def _group_token(group: list[Pending]) -> str:
    """The insert deduplication token of a group: the same batches give the same token."""
    digest = hashlib.blake2b(digest_size=16)
    for batch_id in sorted(p.batch_id for p in group):
        digest.update(batch_id.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return "g" + digest.hexdigest()


def _extend(targets: list[list[Any]], columns: Sequence[Sequence[Any]], rows: list[int]) -> None:
    """Appends the given rows of each column to the matching target list."""
    if rows:
        for target, column in zip(targets, columns, strict=True):
            target.extend(column[i] for i in rows)


def process_columns(batch: DecodedBatch, now: int) -> list[Sequence[Any]]:
    """The ``processes`` rows of a batch, one sequence per :data:`PROCESS_COLUMNS` entry."""
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


def sample_columns(batch: DecodedBatch) -> list[Sequence[Any]]:
    """The ``samples`` rows of a batch, one sequence per :data:`SAMPLE_COLUMNS` entry."""
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

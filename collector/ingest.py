"""Ingest: validate a pushed :class:`~flamehouse.proto.ingest_pb2.Batch` and store it.

The path of one batch is ``proto → validate() → DecodedBatch → Ingestor → store``:

* :func:`~flamehouse.collector.validate.validate` (pure, in its own module) checks the
  wire contract and returns plain frozen column tuples, or raises
  :class:`~flamehouse.collector.InvalidBatch` saying what to fix.
* :class:`Ingestor` hands the decoded batch to a
  :class:`~flamehouse.collector.writer.GroupWriter`, which writes the batches pushed at the
  same time as one insert per table (group commit) and stores each ``batch_id`` at most
  once, even across collector restarts: a bounded in-memory set of recent batch ids answers
  ``duplicate=True`` without touching the store, and a batch that is not a first try is
  looked up in the store before it is written.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from flamehouse.collector import InvalidBatch, StoreError
from flamehouse.collector.gpu_batch import decode_gpu
from flamehouse.collector.store import Store
from flamehouse.collector.validate import MAX_BATCH_ID_CHARS, IngestLimits, VerifiedIds, validate
from flamehouse.collector.writer import DEFAULT_MAX_GROUP_ROWS, GroupWriter, Pending, RecentIds
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
    #: Grouped inserts made: batches_stored / insert_groups is the mean group size.
    insert_groups: int = 0
    #: Batches that were not first tries, looked up in the store before being written.
    batches_looked_up: int = 0
    #: Of those, batches the store already held (acked as duplicates, counted there too).
    batches_found_stored: int = 0
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


# --------------------------------------------------------------------------- ingestor


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
        max_group_rows: int = DEFAULT_MAX_GROUP_ROWS,
    ) -> None:
        self.store = store
        self.limits = limits or IngestLimits()
        self.counters = counters if counters is not None else IngestCounters()
        self._clock = clock
        self._recent = RecentIds(recent_ids)
        self._verified = VerifiedIds()  # frame and stack ids already checked: most batches repeat them
        self._writer = GroupWriter(
            store, clock=clock, count=self.counters.add, max_rows=max_group_rows, known_rows=known_rows
        )
        self._reject_log = Throttle()  # one per cause, so a flood of one hides none of the other
        self._failure_log = Throttle()

    def push(self, batch: ingest_pb2.Batch) -> ingest_pb2.Ack:
        """Stores ``batch`` and acknowledges it.

        A ``batch_id`` this process already stored is acknowledged as a duplicate without
        being decoded again; a batch that is not a first try (``attempt != 1``) and that an
        earlier collector process stored is found in the store and acknowledged the same way.

        Raises :class:`InvalidBatch` (nothing written) or :class:`StoreError` (retry the
        same batch: what its group wrote is found by the retry's look-up).
        """
        self.counters.add(batches_received=1)
        bid = batch.batch_id
        if bid and bid in self._recent:
            self.counters.add(batches_duplicate=1)
            log.debug("duplicate batch batch_id=%s host=%s", bid, batch.agent.host)
            return ingest_pb2.Ack(batch_id=bid, rows=0, samples=0, duplicate=True)
        now = self._clock()
        try:
            decoded = validate(batch, self.limits, now=now, ttl_days=self.store.config.ttl_days, known=self._verified)
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
        pending = Pending(decoded, gpu, batch.agent.host, check_store=batch.attempt != 1)
        try:
            self._writer.write(pending)
        except StoreError as exc:
            self.counters.add(batches_failed=1)
            _warn_throttled(self._failure_log, "batch not stored batch_id=%s error=%s", bid, exc)
            raise
        except Exception:
            self.counters.add(batches_failed=1)
            raise
        self._recent.add(bid)
        if pending.duplicate:
            self.counters.add(batches_duplicate=1)
            log.debug("duplicate batch batch_id=%s host=%s (found in the store)", bid, batch.agent.host)
            return ingest_pb2.Ack(batch_id=bid, rows=0, samples=0, duplicate=True)
        self.counters.add(
            batches_stored=1, rows_stored=decoded.rows, samples_stored=decoded.sample_total, gpu_rows_stored=gpu.rows
        )
        log.debug("batch stored batch_id=%s rows=%d samples=%d", bid, decoded.rows, decoded.sample_total)
        return ingest_pb2.Ack(batch_id=bid, rows=decoded.rows, samples=decoded.sample_total, duplicate=False)


def _warn_throttled(throttle: Throttle, message: str, *args: object) -> None:
    held = throttle.allow()
    if held is not None:
        log.warning(message + " suppressed=%d", *args, held)

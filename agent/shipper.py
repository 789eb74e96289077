"""Delivering batches to the collector over gRPC, in order, at least once.

``flamehouse.v1.Ingest/Push`` is unary and gzip-compressed, over TLS when the agent has a
CA (``tls_ca``). One background thread sends the oldest batch first; a batch the collector
could not take now (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) is retried with the
same ``batch_id`` after an exponential, jittered backoff, so a batch whose ack was lost is
stored once. A batch refused for good (INVALID_ARGUMENT, UNAUTHENTICATED, a message over
the collector's size limit, ...) is dropped and counted.

Where waiting batches live, oldest first::

    spool (disk, up to max_spool_bytes)  →  memory (up to max_memory_batches)  ←  submit()

A new batch goes to memory; when memory is full its oldest batch moves to the back of the
spool, and when the spool is full its oldest file is deleted. Batches are sent from the
front: spool first, then memory, so the order is kept. On close, what is still undelivered
is written to the spool, where the next agent (same spool directory) finds and delivers
it (batches wait under ``<spool_dir>/<collector address>/``, so they go where they were
meant to). When the spool cannot be written (disk full, directory unwritable) the shipper keeps
going memory-only, logs it once, counts ``spool_errors`` and tries the disk again after
``spool_retry_s``. Nothing is lost without a counter::

    samples_queued + samples_recovered
        == samples_acked + samples_dropped + samples_left_in_spool   (after close)
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError

from flamehouse.agent.batch import batch_samples
from flamehouse.agent.spool import Spool, SpoolEntry, SpoolError
from flamehouse.proto import ingest_pb2

log = logging.getLogger(__name__)

PUSH_METHOD = "/flamehouse.v1.Ingest/Push"
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
#: How gRPC words RESOURCE_EXHAUSTED for a message over the receiver's limit: not worth a retry.
_TOO_LARGE = "larger than max"


@dataclass(slots=True)
class ShipperCounters:
    """What happened to the batches handed to the shipper (and found in its spool)."""

    #: Batches (and their samples) handed to :meth:`Shipper.submit`.
    batches_queued: int = 0
    samples_queued: int = 0
    #: Push calls made, retries included.
    batches_sent: int = 0
    #: Batches the collector acknowledged (``batches_duplicate`` of them were stored before).
    batches_acked: int = 0
    samples_acked: int = 0
    batches_duplicate: int = 0
    #: Push calls that failed and will be retried.
    retries: int = 0
    #: Batches written to the disk spool (each counted once, when it first goes to disk).
    batches_spooled: int = 0
    samples_spooled: int = 0
    #: Batches a previous agent left in the spool, found at start.
    batches_recovered: int = 0
    samples_recovered: int = 0
    #: Batches given up: bounds exceeded, refused by the collector, unreadable spool files.
    batches_dropped: int = 0
    samples_dropped: int = 0
    #: Failed spool writes or opens (the shipper then runs memory-only for a while).
    spool_errors: int = 0
    #: Largest size the spool queue reached, bytes.
    spool_bytes_peak: int = 0
    #: Left on disk for the next agent after :meth:`Shipper.close`.
    batches_left_in_spool: int = 0
    samples_left_in_spool: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    """Where and how batches go."""

    #: Collector address, ``host:port``.
    target: str
    #: Bearer token sent as ``authorization`` metadata, or "" for none.
    token: str = ""
    #: PEM of the CA that signed the collector's certificate; None for a plain-text channel.
    tls_ca: bytes | None = None
    #: Seconds one Push may take.
    timeout: float = 15.0
    #: Batches kept in memory before older ones move to the spool (or are dropped without one).
    max_memory_batches: int = 100
    #: Spool directory root; None keeps batches in memory only.
    spool_dir: Path | None = None
    #: Bytes of batch files the spool keeps; beyond it the oldest are deleted and counted.
    max_spool_bytes: int = 256 * 1024 * 1024
    #: Backoff bounds, seconds (also the channel's reconnect backoff).
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    #: With a spool, :meth:`Shipper.flush` stops waiting once the collector was unreachable this long.
    unreachable_grace: float = 10.0
    #: After a failed spool write, seconds of memory-only before trying the disk again.
    spool_retry_s: float = 60.0
    #: Largest message the agent sends, bytes.
    max_message_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Item:
    """A batch waiting or in flight; ``entry`` is its spool file when it came from disk."""

    batch: ingest_pb2.Batch
    samples: int
    entry: SpoolEntry | None = None


class Shipper:
    """Sends batches in order from a background thread; see the module docstring."""

    def __init__(self, config: ShipperConfig) -> None:
        if config.max_memory_batches < 1:
            raise ValueError(f"max_memory_batches must be at least 1, got {config.max_memory_batches}")
        self.config = config
        self.counters = ShipperCounters()
        self._memory: collections.deque[_Item] = collections.deque()
        self._current: _Item | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._failing_since: float | None = None
        self._flush_since: float | None = None  # when someone first waited for the queue to drain
        self._kick = False  # retry now instead of finishing the backoff (set by flush)
        self._spool_down_until = 0.0
        self._drop_log_next = 0.0
        self._drops_unlogged = 0
        self._spool = self._open_spool()
        self._channel = _channel(config)
        self._push = self._channel.unary_unary(
            PUSH_METHOD,
            request_serializer=ingest_pb2.Batch.SerializeToString,
            response_deserializer=ingest_pb2.Ack.FromString,
        )
        self._thread = threading.Thread(target=self._run, name="flamehouse-shipper", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public

    def submit(self, batch: ingest_pb2.Batch) -> None:
        """Queues ``batch``; when memory is full its oldest batch goes to the spool (or is dropped)."""
        item = _Item(batch, batch_samples(batch))
        with self._cond:
            self.counters.batches_queued += 1
            self.counters.samples_queued += item.samples
            self._memory.append(item)
            while len(self._memory) > self.config.max_memory_batches:
                self._spill(self._memory.popleft())
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Waits until every batch was acked or dropped; False on timeout.

        With a usable spool it gives up early, once the collector has been unreachable for
        ``unreachable_grace`` seconds of this wait: the spool keeps what is left.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._flush_since is None:
                self._flush_since = time.monotonic()
            self._kick = True
            self._cond.notify_all()
            while self._pending():
                now = time.monotonic()
                if now >= deadline or self._spool_covers_outage(now):
                    return False
                self._cond.wait(min(deadline - now, 0.25))
        return True

    def close(self, timeout: float = 10.0) -> dict[str, int]:
        """Flushes for up to ``timeout`` s, then spools (or drops, counted) what is left; returns the counters."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=self.config.timeout + 1)
        with self._cond:
            self._stash_remaining()
            if self._spool is not None:
                self.counters.batches_left_in_spool = len(self._spool)
                self.counters.samples_left_in_spool = self._spool.samples
                self._spool.close()
            if self._drops_unlogged:
                log.warning("more batches dropped count=%d (see batches_dropped)", self._drops_unlogged)
        self._channel.close()
        snapshot = self.counters.snapshot()
        log.info("shipper closed %s", " ".join(f"{k}={v}" for k, v in snapshot.items()))
        return snapshot

    # ------------------------------------------------------------------ queue (call with the lock held)

    def _pending(self) -> bool:
        return bool(self._memory or self._current is not None or (self._spool is not None and len(self._spool)))

    def _spool_covers_outage(self, now: float) -> bool:
        """True when the spool can keep the rest and the collector was down for the whole grace."""
        if self._failing_since is None or self._spool is None or now < self._spool_down_until:
            return False
        waiting_since = self._flush_since if self._flush_since is not None else now
        return now - max(self._failing_since, waiting_since) >= self.config.unreachable_grace

    def _take(self) -> _Item | None:
        """The oldest waiting batch, out of the queue: spool first, then memory."""
        while self._spool is not None and len(self._spool):
            entry = self._spool.pop()
            assert entry is not None
            try:
                batch = ingest_pb2.Batch.FromString(self._spool.read(entry))
            except (SpoolError, DecodeError) as err:
                self._spool.discard(entry)
                self._count_drop(entry.samples, entry.path.name, f"unreadable spool file: {err}")
                continue
            # It may have been sent before it was spooled, or before the agent restarted: from
            # here on a retry, which the collector looks up before writing (Batch.attempt).
            batch.attempt = max(batch.attempt, 1)
            return _Item(batch, entry.samples, entry)
        return self._memory.popleft() if self._memory else None

    def _spill(self, item: _Item, *, front: bool = False, why: str = "memory queue full") -> None:
        """Moves ``item`` to the spool, or drops it (counted) when there is no usable spool."""
        spool = self._spool
        if spool is None or time.monotonic() < self._spool_down_until:
            self._count_drop(item.samples, item.batch.batch_id, f"{why} and no usable spool")
            return
        try:
            dropped = spool.append(item.batch.SerializeToString(), item.samples, front=front)
        except SpoolError as err:
            self.counters.spool_errors += 1
            if self._spool_down_until == 0.0:  # logged once per outage
                log.warning(
                    "spool unwritable, running memory-only error=%s retry_in_s=%.0f", err, self.config.spool_retry_s
                )
            self._spool_down_until = time.monotonic() + self.config.spool_retry_s
            self._count_drop(item.samples, item.batch.batch_id, f"{why} and spool unwritable")
            return
        if self._spool_down_until:
            log.info("spool writable again dir=%s", spool.dir)
            self._spool_down_until = 0.0
        self.counters.batches_spooled += 1
        self.counters.samples_spooled += item.samples
        self.counters.spool_bytes_peak = max(self.counters.spool_bytes_peak, spool.size_bytes)
        for entry in dropped:
            self._count_drop(entry.samples, entry.path.name, "spool full")

    def _stash_remaining(self) -> None:
        """At close: puts the in-flight batch back at the front, then memory behind the spool."""
        current, self._current = self._current, None
        why = "agent stopping before the collector took it"
        if current is not None:
            if current.entry is not None and self._spool is not None:
                self._spool.unpop(current.entry)
            else:  # taken from memory while the spool was empty: older than anything spooled since
                self._spill(current, front=True, why=why)
        while self._memory:
            self._spill(self._memory.popleft(), why=why)

    def _count_drop(self, samples: int, what: str, why: str) -> None:
        """Counts a dropped batch; logs the first drop and then at most one summary a minute."""
        self.counters.batches_dropped += 1
        self.counters.samples_dropped += samples
        now = time.monotonic()
        if now < self._drop_log_next:
            self._drops_unlogged += 1
            return
        log.warning(
            "batch dropped batch=%s samples=%d reason=%s unlogged_drops=%d", what, samples, why, self._drops_unlogged
        )
        self._drops_unlogged, self._drop_log_next = 0, now + 60.0

    def _open_spool(self) -> Spool | None:
        if self.config.spool_dir is None:
            return None
        try:
            spool = Spool(self.config.spool_dir / spool_name(self.config.target), self.config.max_spool_bytes)
        except SpoolError as err:
            self.counters.spool_errors += 1
            log.warning("spool unusable, running memory-only error=%s", err)
            return None
        self.counters.batches_recovered = len(spool)
        self.counters.samples_recovered = spool.samples
        self.counters.spool_bytes_peak = spool.size_bytes
        if len(spool):
            found = (len(spool), spool.samples, spool.size_bytes, spool.dir)
            log.info("spool recovered batches=%d samples=%d bytes=%d dir=%s", *found)
        return spool

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        backoff = self.config.backoff_initial
        while True:
            with self._cond:
                item = self._next_item()
                if item is None:
                    return
            outcome = self._send(item)
            with self._cond:
                if outcome == "retry":
                    self._note_failure()
                    self._wait_backoff(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, self.config.backoff_max)
                else:
                    self._finish(item)
                    backoff = self.config.backoff_initial
                self._cond.notify_all()

    def _next_item(self) -> _Item | None:
        """The batch to send now (waiting for one); None once closing."""
        while not self._closing:
            if self._current is None:
                self._current = self._take()
            if self._current is not None:
                return self._current
            self._cond.wait()
        return None

    def _wait_backoff(self, delay: float) -> None:
        """Sleeps ``delay`` s; new batches do not cut it short, a flush or close does."""
        until = time.monotonic() + delay
        while not (self._closing or self._kick) and (left := until - time.monotonic()) > 0:
            self._cond.wait(left)
        self._kick = False

    def _note_failure(self) -> None:
        self.counters.retries += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    def _finish(self, item: _Item) -> None:
        """The batch was acked or refused for good: out of the queue and off the disk."""
        if self._failing_since is not None:
            log.info("collector reachable again after_s=%.1f", time.monotonic() - self._failing_since)
            self._failing_since = None
        if self._current is item:
            self._current = None
            if item.entry is not None and self._spool is not None:
                self._spool.discard(item.entry)

    def _send(self, item: _Item) -> str:
        """One Push: ``"acked"``, ``"dropped"`` (refused for good) or ``"retry"``."""
        batch = item.batch
        metadata = (("authorization", f"Bearer {self.config.token}"),) if self.config.token else None
        with self._cond:
            self.counters.batches_sent += 1
        batch.attempt += 1  # 1 on the first try: the collector skips its store look-up
        try:
            ack = self._push(batch, timeout=self.config.timeout, metadata=metadata)
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code in _RETRYABLE and _TOO_LARGE not in details:
                level = logging.WARNING if self._failing_since is None else logging.DEBUG
                log.log(level, "collector not taking batches code=%s details=%.200s; will retry", code.name, details)
                return "retry"
            with self._cond:
                self._count_drop(item.samples, batch.batch_id, f"collector refused it: {code.name}: {details}")
            return "dropped"
        with self._cond:
            self.counters.batches_acked += 1
            self.counters.samples_acked += item.samples
            if ack.duplicate:
                self.counters.batches_duplicate += 1
        return "acked"


def _channel(config: ShipperConfig) -> grpc.Channel:
    """A gzip channel to the collector: TLS with ``tls_ca``, else plain text."""
    options = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        # reconnect as fast as we retry, so a collector that is back is used within backoff_max
        ("grpc.initial_reconnect_backoff_ms", int(config.backoff_initial * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(config.backoff_initial * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(config.backoff_max * 1000)),
    ]
    if config.tls_ca is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=config.tls_ca)
        return grpc.secure_channel(config.target, credentials, options=options, compression=grpc.Compression.Gzip)
    if config.token and not _is_loopback(config.target):
        log.warning("bearer token sent in plain text target=%s: give the agent --tls-ca", config.target)
    return grpc.insecure_channel(config.target, options=options, compression=grpc.Compression.Gzip)


def spool_name(target: str) -> str:
    """The spool subdirectory for a collector address: batches wait for the collector they were meant for."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", target) or "_"


def _is_loopback(target: str) -> bool:
    host = target.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

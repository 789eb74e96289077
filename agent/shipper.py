"""Delivering batches to the collector over gRPC.

``flamehouse.v1.Ingest/Push`` is unary and gzip-compressed. A background thread
sends queued batches in order; a batch the collector could not take now
(UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) is retried with the same
``batch_id`` after an exponential, jittered backoff, so a batch whose ack was
lost is stored once. A batch refused for good (INVALID_ARGUMENT,
UNAUTHENTICATED, ...) is dropped and counted. The queue is bounded: when full,
the oldest batch is dropped and counted. Nothing is lost without a counter.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass, fields

import grpc

from flamehouse.agent.batch import batch_samples
from flamehouse.proto import ingest_pb2

log = logging.getLogger(__name__)

PUSH_METHOD = "/flamehouse.v1.Ingest/Push"
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


@dataclass(slots=True)
class ShipperCounters:
    """What happened to the batches handed to the shipper."""

    batches_queued: int = 0
    batches_acked: int = 0
    batches_duplicate: int = 0
    batches_dropped: int = 0
    samples_queued: int = 0
    samples_acked: int = 0
    samples_dropped: int = 0
    retries: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    """Where and how batches go."""

    #: Collector address, ``host:port``.
    target: str
    #: Bearer token sent as ``authorization`` metadata, or "" for none.
    token: str = ""
    #: Seconds one Push may take.
    timeout: float = 15.0
    #: Batches kept in memory while the collector is unreachable.
    max_queued_batches: int = 1000
    #: Backoff bounds, seconds.
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    #: Largest message the agent sends, bytes.
    max_message_bytes: int = 64 * 1024 * 1024


class Shipper:
    """Sends batches in order from a background thread."""

    def __init__(self, config: ShipperConfig) -> None:
        self.config = config
        self.counters = ShipperCounters()
        self._queue: collections.deque[ingest_pb2.Batch] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._in_flight = False
        self._channel = grpc.insecure_channel(
            config.target,
            options=[("grpc.max_send_message_length", config.max_message_bytes)],
            compression=grpc.Compression.Gzip,
        )
        self._push = self._channel.unary_unary(
            PUSH_METHOD,
            request_serializer=ingest_pb2.Batch.SerializeToString,
            response_deserializer=ingest_pb2.Ack.FromString,
        )
        self._thread = threading.Thread(target=self._run, name="flamehouse-shipper", daemon=True)
        self._thread.start()

    def submit(self, batch: ingest_pb2.Batch) -> None:
        """Queues ``batch``; drops (and counts) the oldest when the queue is full."""
        samples = batch_samples(batch)
        with self._cond:
            if len(self._queue) >= self.config.max_queued_batches:
                dropped = self._queue.popleft()
                self._count_drop(dropped, "queue full")
            self._queue.append(batch)
            self.counters.batches_queued += 1
            self.counters.samples_queued += samples
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Waits until every queued batch was acked or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> dict[str, int]:
        """Flushes for up to ``timeout`` seconds, then drops (and counts) what is left."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            while self._queue:
                self._count_drop(self._queue.popleft(), "agent stopping with collector unreachable")
            self._cond.notify_all()
        self._thread.join(timeout=self.config.timeout + 1)
        self._channel.close()
        return self.counters.snapshot()

    def _count_drop(self, batch: ingest_pb2.Batch, why: str) -> None:
        self.counters.batches_dropped += 1
        self.counters.samples_dropped += batch_samples(batch)
        log.warning("batch dropped batch_id=%s samples=%d reason=%s", batch.batch_id, batch_samples(batch), why)

    def _run(self) -> None:
        backoff = self.config.backoff_initial
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = self._queue[0]
                self._in_flight = True
            outcome = self._send(batch)
            with self._cond:
                if outcome != "retry" and self._queue and self._queue[0] is batch:
                    self._queue.popleft()
                self._in_flight = False
                self._cond.notify_all()
                if outcome == "retry":
                    if self._closing:
                        continue
                    self.counters.retries += 1
                    self._cond.wait(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, self.config.backoff_max)
                else:
                    backoff = self.config.backoff_initial

    def _send(self, batch: ingest_pb2.Batch) -> str:
        metadata = (("authorization", f"Bearer {self.config.token}"),) if self.config.token else None
        try:
            ack = self._push(batch, timeout=self.config.timeout, metadata=metadata)
        except grpc.RpcError as err:
            code = err.code()
            if code in _RETRYABLE:
                log.info("collector not taking batches code=%s batch_id=%s; will retry", code.name, batch.batch_id)
                return "retry"
            with self._cond:
                self._count_drop(batch, f"collector refused it: {code.name}: {err.details()}")
            return "dropped"
        with self._cond:
            self.counters.batches_acked += 1
            self.counters.samples_acked += batch_samples(batch)
            if ack.duplicate:
                self.counters.batches_duplicate += 1
        return "acked"

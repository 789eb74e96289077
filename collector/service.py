"""The gRPC face of ingest: ``flamehouse.v1.Ingest/Push(Batch) → Ack``.

No generated gRPC stubs: the one unary method is registered with a generic handler,
and clients call it by path, e.g. from the agent (which must not import the collector)::

    push = channel.unary_unary(
        "/flamehouse.v1.Ingest/Push",
        request_serializer=ingest_pb2.Batch.SerializeToString,
        response_deserializer=ingest_pb2.Ack.FromString,
    )
    ack = push(batch, metadata=[("authorization", f"Bearer {token}")],
               compression=grpc.Compression.Gzip, timeout=30)

Status codes a client sees:

* ``OK``                  stored (or ``ack.duplicate``: stored before, nothing new written)
* ``INVALID_ARGUMENT``    the batch breaks the contract; the details say what to fix; do not retry
* ``INVALID_ARGUMENT``    also when the body is not a ``Batch`` at all (undecodable bytes)
* ``UNAUTHENTICATED``     tokens are configured and the call has no valid ``authorization: Bearer``
* ``RESOURCE_EXHAUSTED``  the message (decompressed) is over ``max_message_bytes`` ("larger than max":
                          send smaller batches), or ``max_concurrent_pushes`` calls are already being
                          served ("Concurrent RPC limit exceeded": back off and retry)
* ``UNAVAILABLE``         the store failed, or the server is shutting down; retry the same batch
                          (it is stored once)
* ``INTERNAL``            a collector bug; the traceback is in the collector's log

Memory stays bounded under backpressure: gRPC refuses a call beyond ``max_concurrent_pushes``
before reading its message, so at most ``max_concurrent_pushes * max_message_bytes`` of
requests are held. :meth:`GrpcServer.stop` refuses new calls and lets the in-flight ones
(inserts included) finish for ``grace`` seconds.

With ``tls`` (certificate chain and key, PEM) the port speaks TLS only; without it bearer
tokens travel in clear text, so keep a plain-text port on loopback or behind a
TLS-terminating proxy (the server warns otherwise).

The standard gRPC health service ``grpc.health.v1.Health`` answers ``SERVING`` for ``""`` and
``flamehouse.v1.Ingest`` while the server runs and ``NOT_SERVING`` once it stops (Kubernetes
``grpc:`` probes, ``grpc_health_probe``). It needs no token, like the HTTP ``/healthz``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flamehouse.collector import CollectorError, InvalidBatch, StoreError
from flamehouse.collector.ingest import Ingestor, Throttle
from flamehouse.proto import ingest_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = "flamehouse.v1.Ingest"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
PUSH_METHOD = f"/{SERVICE_NAME}/Push"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_PUSHES = 32

if TYPE_CHECKING:
    _Interceptor = grpc.ServerInterceptor[Any, Any]
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Service = grpc.GenericRpcHandler[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor
    _Handler = grpc.RpcMethodHandler
    _Service = grpc.GenericRpcHandler


class ListenError(CollectorError):
    """The gRPC server could not listen on the requested address."""


@dataclass(frozen=True, slots=True)
class GrpcServer:
    """A started ingest server; ``port`` is the bound port (useful with ``:0``)."""

    server: grpc.Server
    port: int
    #: The standard health servicer (``grpc_health.v1.health.HealthServicer``), if registered.
    health: Any = None

    def stop(self, grace: float | None = 5.0) -> None:
        """Stops accepting calls, lets in-flight ones finish for up to ``grace`` seconds."""
        if self.health is not None:
            self.health.enter_graceful_shutdown()  # health checks answer NOT_SERVING from now on
        self.server.stop(grace).wait()

    def wait(self) -> None:
        """Blocks until the server stops."""
        self.server.wait_for_termination()

    def __enter__(self) -> GrpcServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_grpc_server(
    ingestor: Ingestor,
    listen: str,
    *,
    tokens: frozenset[str] = frozenset(),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_concurrent_pushes: int = DEFAULT_MAX_CONCURRENT_PUSHES,
    tls: tuple[bytes, bytes] | None = None,
) -> GrpcServer:
    """Starts serving ``Push`` on ``listen`` (``host:port``; port 0 picks a free one).

    With ``tokens`` every call must carry ``authorization: Bearer <one of tokens>``; with
    ``tls`` = (certificate chain PEM, private key PEM) the port speaks TLS. Calls beyond
    ``max_concurrent_pushes`` get RESOURCE_EXHAUSTED at once. Raises :class:`ListenError`
    when the address cannot be bound (in use, bad host) or the TLS files are unusable.
    """
    # A thread per admitted push: pushes wait for their group's insert (collector/writer.py),
    # and the more of them wait together, the larger and cheaper the inserts.
    executor = futures.ThreadPoolExecutor(max_workers=max_concurrent_pushes, thread_name_prefix="flamehouse-ingest")
    server = grpc.server(
        executor,
        handlers=[_push_service(ingestor)],
        interceptors=[_BearerAuth(tokens)] if tokens else None,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Without this a second collector on a busy port would bind silently (Linux SO_REUSEPORT).
            ("grpc.so_reuseport", 0),
        ],
        compression=grpc.Compression.Gzip,
        maximum_concurrent_rpcs=max_concurrent_pushes,
    )
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ("", SERVICE_NAME):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = _bind(server, listen, tls)
    if not port:
        server.stop(None)
        executor.shutdown(wait=False)
        why = "address in use, not local to this host, or unusable TLS certificate/key"
        raise ListenError(f"cannot listen for gRPC on {listen!r}: {why}")
    server.start()
    if tokens and tls is None and not _is_loopback(listen):
        log.warning("bearer tokens accepted over plain text listen=%s: give --tls-cert/--tls-key", listen)
    auth, secure = "bearer" if tokens else "none", "on" if tls else "off"
    log.info(
        "grpc ingest started listen=%s port=%d auth=%s tls=%s max_concurrent_pushes=%d",
        *(listen, port, auth, secure, max_concurrent_pushes),
    )
    return GrpcServer(server=server, port=port, health=checker)


def _push_service(ingestor: Ingestor) -> _Service:
    """``flamehouse.v1.Ingest`` with its one method, taking the request as raw bytes."""
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Push": grpc.unary_unary_rpc_method_handler(
                _PushHandler(ingestor),
                request_deserializer=None,  # raw bytes: an undecodable body becomes INVALID_ARGUMENT
                response_serializer=ingest_pb2.Ack.SerializeToString,
            )
        },
    )


def _bind(server: grpc.Server, listen: str, tls: tuple[bytes, bytes] | None) -> int:
    """The bound port, or 0 (older grpcio returns 0 on failure, newer raises RuntimeError)."""
    try:
        if tls is None:
            return server.add_insecure_port(listen)
        chain, key = tls
        return server.add_secure_port(listen, grpc.ssl_server_credentials([(key, chain)]))
    except RuntimeError as exc:
        log.debug("bind failed listen=%s error=%s", listen, exc)
        return 0


def _is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _PushHandler:
    """Runs ``Ingestor.push`` and turns collector errors into gRPC status codes."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> ingest_pb2.Ack:
        try:
            request = ingest_pb2.Batch.FromString(body)
        except DecodeError as exc:
            self._ingestor.counters.add(batches_received=1, batches_rejected=1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a flamehouse.v1.Batch message: {exc}")
        try:
            return self._ingestor.push(request)
        except InvalidBatch as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "store unavailable, retry")
        except Exception:
            log.exception("push failed batch_id=%r peer=%s", request.batch_id[:128], context.peer())
            context.abort(grpc.StatusCode.INTERNAL, "internal error in the collector; see its log")


class _BearerAuth(_Interceptor):
    """Rejects calls without ``authorization: Bearer <token>`` naming a configured token."""

    def __init__(self, tokens: frozenset[str]) -> None:
        self._tokens = tuple(t.encode("utf-8") for t in tokens)
        self._deny: _Handler = grpc.unary_unary_rpc_method_handler(_deny)
        self._warn = Throttle()

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], _Handler | None], details: grpc.HandlerCallDetails
    ) -> _Handler | None:
        if details.method.startswith(HEALTH_PREFIX):  # probes carry no token
            return continuation(details)
        presented = _bearer(details.invocation_metadata)
        if presented is not None and self._matches(presented.encode("utf-8")):
            return continuation(details)
        held = self._warn.allow()
        if held is not None:  # the token itself is never logged
            log.warning(
                "unauthenticated call method=%s reason=%s suppressed=%d",
                details.method,
                "no bearer token" if presented is None else "unknown token",
                held,
            )
        return self._deny

    def _matches(self, presented: bytes) -> bool:
        # Compare against every token without stopping early, in constant time each.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(presented, token)
        return matched


def _bearer(metadata: Any) -> str | None:
    """The token of the first ``authorization: Bearer …`` entry, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _deny(_request: bytes, context: grpc.ServicerContext) -> None:
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or invalid bearer token: send metadata 'authorization: Bearer <token>' "
        "with a token configured on the collector",
    )

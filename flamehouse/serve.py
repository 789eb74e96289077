"""Running the collector and the HTTP API as one process, or either half alone.

``flamehouse server`` = gRPC ingest + HTTP API over one shared :class:`Store`
(chDB allows one process per data path, so the halves must share a handle);
``flamehouse collector`` and ``flamehouse ui`` run one half each against a
ClickHouse server. This module wires objects and owns their lifecycle; the
logic lives in the components.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import prometheus_client

from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.service import GrpcServer, start_grpc_server
from flamehouse.collector.store import Store, StoreConfig
from flamehouse.collector.upkeep import apply_retention, backfill_rollup
from flamehouse.config import split_listen

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The running parts of a server process."""

    store: Store
    registry: prometheus_client.CollectorRegistry
    grpc: GrpcServer | None = None
    http: Any = None  # uvicorn.Server
    http_thread: threading.Thread | None = None
    http_port: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc else 0

    def stop(self, grace: float = 10.0) -> None:
        """Stops taking requests, finishes in-flight ones (up to ``grace`` s), closes the store."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.grpc is not None:
            self.grpc.stop(grace)
        if self.http is not None and self.http_thread is not None:
            self.http.should_exit = True
            self.http_thread.join(grace)
        self.store.close()
        log.info("server stopped")


def open_store(config: StoreConfig, cluster: str | None = None) -> Store:
    """The store, migrated (``ON CLUSTER cluster`` when given; see collector.cluster), its rollup caught up
    and its tables' TTLs set to the configured retention (see collector.upkeep)."""
    store = Store(config)
    try:
        migrate(store, cluster)
        backfill_rollup(store)
        apply_retention(store)
    except BaseException:
        store.close()
        raise
    return store


def start(
    store_config: StoreConfig,
    *,
    grpc_listen: str | None,
    http_listen: str | None,
    tokens: frozenset[str] = frozenset(),
    tls: tuple[bytes, bytes] | None = None,
    api_tokens: frozenset[str] = frozenset(),
    cluster: str | None = None,
) -> Services:
    """Opens (and migrates) the store and starts the requested halves.

    ``tokens`` are the agents' (ingest) tokens, ``tls`` the gRPC (certificate chain, key)
    PEMs, ``api_tokens`` the read-only tokens /api/v1/* then requires, ``cluster`` the
    ClickHouse cluster the schema is created on (None: single node).
    """
    store = open_store(store_config, cluster)
    registry = prometheus_client.CollectorRegistry()
    services = Services(store=store, registry=registry)
    try:
        if grpc_listen is not None:
            counters = IngestCounters()
            counters.register(registry)
            ingestor = Ingestor(store, counters=counters)
            services.grpc = start_grpc_server(ingestor, grpc_listen, tokens=tokens, tls=tls)
            log.info("ingest listening grpc=%s:%d", split_listen(grpc_listen)[0], services.grpc.port)
        if http_listen is not None:
            _start_http(services, http_listen, api_tokens)
    except BaseException:
        services.stop(grace=1.0)
        raise
    return services


def _start_http(services: Services, listen: str, api_tokens: frozenset[str] = frozenset()) -> None:
    import uvicorn

    from flamehouse.ui.app import create_app, require_read_token

    host, port = split_listen(listen)
    app = create_app(QueryService(services.store), ready=services.store.ping, registry=services.registry)
    if api_tokens:
        require_read_token(app, api_tokens)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="flamehouse-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive():
            raise OSError(f"HTTP server could not listen on {listen} (port in use?)")
        if time.monotonic() > deadline:
            raise OSError(f"HTTP server did not start on {listen} within 15s")
        time.sleep(0.02)
    services.http, services.http_thread = server, thread
    sockets = [s for srv in server.servers for s in srv.sockets]
    services.http_port = sockets[0].getsockname()[1] if sockets else port
    log.info("http listening url=http://%s:%d", host, services.http_port)


def serve_metrics(services: Services, listen: str) -> int:
    """Serves the registry at ``http://listen/metrics`` (for ``flamehouse collector`` without HTTP API)."""
    host, port = split_listen(listen)
    server, _thread = prometheus_client.start_http_server(port, addr=host, registry=services.registry)
    bound = int(server.server_address[1])
    log.info("collector metrics listening url=http://%s:%d/metrics", host, bound)
    return bound


def serve_forever(services: Services) -> int:
    """Blocks until SIGINT/SIGTERM, then shuts down gracefully."""
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down signal=%s", signal.Signals(signum).name)
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    while not done.is_set():
        if services.http_thread is not None and not services.http_thread.is_alive():
            log.error("http server thread ended unexpectedly")
            services.stop()
            return 1
        done.wait(0.5)
    services.stop()
    return 0

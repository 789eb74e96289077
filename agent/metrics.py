"""The agent's Prometheus endpoint (``flamehouse agent|run --metrics-listen HOST:PORT``).

Every counter the agent keeps is exported, read at scrape time from the objects that own
it, in a registry of its own (nothing from the default process-wide registry leaks in):

* ``flamehouse_agent_<name>_total`` for :class:`~flamehouse.agent.profiler.SamplingCounters`
  (``samples_taken``, ``windows``, ``targets_failed``, ...) and
  :class:`~flamehouse.agent.shipper.ShipperCounters` (``batches_sent``, ``samples_acked``,
  ``retries``, ``samples_dropped``, ...);
* ``flamehouse_agent_gpu_source_<name>_total`` for the GPU source's
  :class:`~flamehouse.agent.gpu.GpuCounters` (``polls``, ``errors``, ``devices_lost``, ...);
* gauges: ``flamehouse_agent_targets_active`` (processes being sampled now),
  ``flamehouse_agent_spool_bytes_peak``, ``flamehouse_agent_batches_left_in_spool`` and
  ``flamehouse_agent_samples_left_in_spool``; ``flamehouse_agent_info{version, gpu_source}``.

The same numbers are logged at exit and written by ``--stats-file``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from flamehouse.agent.profiler import Profiler

log = logging.getLogger(__name__)

PREFIX = "flamehouse_agent_"
#: Counters that can go down (sizes, what is left), exported as gauges.
GAUGES = frozenset({"spool_bytes_peak", "batches_left_in_spool", "samples_left_in_spool"})


class _Snapshot(Protocol):
    def snapshot(self) -> dict[str, int]: ...


class AgentCollector(Collector):
    """Reads the profiler's, shipper's and GPU source's counters on every scrape."""

    def __init__(self, profiler: Profiler, version: str = "") -> None:
        self._profiler = profiler
        self._version = version

    def collect(self) -> Iterator[Metric]:
        profiler = self._profiler
        yield from _families(PREFIX, profiler.counters, "agent sampling counter")
        yield from _families(PREFIX, profiler.shipper.counters, "agent delivery counter")
        if profiler.gpu is not None:
            yield from _families(PREFIX + "gpu_source_", profiler.gpu.counters, "GPU source counter")
        active = GaugeMetricFamily(PREFIX + "targets_active", "processes being sampled now")
        active.add_metric([], profiler.active())
        yield active
        info = InfoMetricFamily(PREFIX.rstrip("_"), "the agent's version and GPU source")
        info.add_metric([], {"version": self._version, "gpu_source": profiler.gpu.name if profiler.gpu else "none"})
        yield info


def _families(prefix: str, counters: _Snapshot, what: str) -> Iterator[Metric]:
    for name, value in counters.snapshot().items():
        family: Metric
        if name in GAUGES:
            family = GaugeMetricFamily(prefix + name, f"{what}: {name.replace('_', ' ')}")
        else:
            family = CounterMetricFamily(prefix + name, f"{what}: {name.replace('_', ' ')}")
        family.add_metric([], value)
        yield family


def registry_for(profiler: Profiler, version: str = "") -> CollectorRegistry:
    """A fresh registry holding only the agent's metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AgentCollector(profiler, version))
    return registry


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound port (useful with ``:0``)."""

    server: WSGIServer
    thread: threading.Thread
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(profiler: Profiler, host: str, port: int, version: str = "") -> MetricsServer:
    """Serves the agent's metrics over HTTP on ``host:port``; raises OSError when it cannot bind."""
    server, thread = start_http_server(port, addr=host, registry=registry_for(profiler, version))
    bound = int(server.server_address[1])
    log.info("agent metrics listening url=http://%s:%d/metrics", host, bound)
    return MetricsServer(server=server, thread=thread, port=bound)

"""The agent's Prometheus endpoint and the collector's standard gRPC health service, for real."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from flamehouse import serve
from flamehouse.agent.gpu_replay import ReplaySource
from flamehouse.agent.metrics import serve_metrics
from flamehouse.agent.shipper import ShipperCounters
from flamehouse.collector.service import SERVICE_NAME
from flamehouse.collector.store import StoreConfig, embedded_dsn
from tests.conftest import Spawn

pytestmark = pytest.mark.integration


BUSY = "import time\nend = time.time() + 8\nwhile time.time() < end:\n    sum(range(1000))\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values


def test_agent_metrics_expose_every_counter_and_only_ours(tmp_path: Path) -> None:
    """In-process: profiler, shipper and GPU source counters, all flamehouse_agent_*."""
    from flamehouse.agent.batch import AgentIdentity
    from flamehouse.agent.profiler import Profiler
    from flamehouse.agent.sampler import SamplerConfig
    from flamehouse.agent.shipper import Shipper, ShipperConfig
    from flamehouse.agent.targets import LabelConfig

    replay = tmp_path / "gpu.jsonl"
    replay.write_text("")
    shipper = Shipper(ShipperConfig(target=f"127.0.0.1:{free_port()}", max_spool_bytes=1, spool_dir=None))
    profiler = Profiler(
        SamplerConfig(pyspy="py-spy"),
        LabelConfig(),
        list,
        shipper,
        AgentIdentity.local(""),
        gpu=ReplaySource(replay),
    )
    profiler.counters.samples_taken = 7
    shipper.counters.retries = 3
    server = serve_metrics(profiler, "127.0.0.1", 0, "9.9")
    try:
        values = scrape(server.port)
    finally:
        server.close()
        shipper.close(timeout=0)
    assert all(name.startswith("flamehouse_agent_") for name in values)
    assert values["flamehouse_agent_samples_taken_total"] == 7
    assert values["flamehouse_agent_retries_total"] == 3
    for name in profiler.counters.snapshot():
        assert f"flamehouse_agent_{name}_total" in values
    for name in ShipperCounters().snapshot():
        assert f"flamehouse_agent_{name}_total" in values or f"flamehouse_agent_{name}" in values
    for name in profiler.gpu.counters.snapshot():  # type: ignore[union-attr]
        assert f"flamehouse_agent_gpu_source_{name}_total" in values
    assert values["flamehouse_agent_targets_active"] == 0
    assert values["flamehouse_agent_info"] == 1


def test_flamehouse_run_serves_metrics_while_the_job_runs(tmp_path: Path, spawn: Spawn) -> None:
    services = serve.start(StoreConfig(embedded_dsn(tmp_path / "data")), grpc_listen="127.0.0.1:0", http_listen=None)
    try:
        port = free_port()
        job = spawn(
            sys.executable,
            "-m",
            "flamehouse.cli",
            "--log-format",
            "json",
            "run",
            "--collector",
            f"127.0.0.1:{services.grpc_port}",
            "--window",
            "1",
            "--gpu",
            "none",
            "--spool-dir",
            str(tmp_path / "spool"),
            "--metrics-listen",
            f"127.0.0.1:{port}",
            "--",
            sys.executable,
            "-c",
            BUSY,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            values = scrape(port)
            if values.get("flamehouse_agent_batches_acked_total", 0) >= 1:
                break
            time.sleep(0.5)
        assert values["flamehouse_agent_samples_taken_total"] > 0
        assert values["flamehouse_agent_batches_acked_total"] >= 1
        assert values["flamehouse_agent_targets_started_total"] >= 1
        job.wait(timeout=60)
        assert job.stderr is not None
        first = job.stderr.read().decode().splitlines()[0]
        assert first.startswith("{") and '"level"' in first
    finally:
        services.stop(grace=1)


def test_collector_answers_the_standard_health_check_without_a_token(tmp_path: Path) -> None:
    services = serve.start(
        StoreConfig(embedded_dsn(tmp_path / "data")),
        grpc_listen="127.0.0.1:0",
        http_listen=None,
        tokens=frozenset({"secret-token"}),
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{services.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE_NAME):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as err:
                stub.Check(health_pb2.HealthCheckRequest(service="nosuch"), timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert services.grpc is not None and services.grpc.health is not None
            services.grpc.health.enter_graceful_shutdown()
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        services.stop(grace=1)


def test_metrics_listen_bad_address_is_a_usage_error(tmp_path: Path) -> None:
    from flamehouse.cli import main

    code = main(["run", "--gpu", "none", "--spool-dir", str(tmp_path), "--metrics-listen", "nonsense", "--", "true"])
    assert code == 2

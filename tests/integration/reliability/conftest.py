"""Fixtures for reliability and security tests: real collectors (in-process or `flamehouse server`
subprocesses that can be killed and restarted on the same ports and data), real agents
(`flamehouse run`), and throw-away TLS certificates made with the openssl CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from flamehouse.agent.batch import AgentIdentity, encode
from flamehouse.agent.model import Frame, Kind, ProcessInfo, SampleRow
from flamehouse.collector.ingest import IngestCounters, Ingestor
from flamehouse.collector.schema import migrate
from flamehouse.collector.service import PUSH_METHOD, GrpcServer, start_grpc_server
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ingest_pb2
from tests.conftest import SCRIPTS
from tests.integration.e2e.conftest import FLAMEHOUSE, free_port

TABLES = ("samples", "frames", "stacks", "processes", "gpu_devices", "gpu_processes")


# --------------------------------------------------------------------------- in-process collector


@dataclass
class Collector:
    """A real store + ingestor + gRPC server in this process."""

    store: Store
    ingestor: Ingestor
    counters: IngestCounters
    servers: list[GrpcServer] = field(default_factory=list)

    def serve(self, listen: str = "127.0.0.1:0", **options: Any) -> GrpcServer:
        server = start_grpc_server(self.ingestor, listen, **options)
        self.servers.append(server)
        return server

    def total_samples(self, service: str | None = None) -> int:
        where = "WHERE service = {s:String}" if service else ""
        rows = self.store.query(f"SELECT sum(count) FROM flamehouse.samples {where}", {"s": service or ""})
        return int(rows[0][0] or 0)

    def table_counts(self) -> dict[str, int]:
        return {t: int(self.store.query(f"SELECT count() FROM flamehouse.{t}")[0][0]) for t in TABLES}


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    store = Store(StoreConfig(dsn=embedded_dsn(tmp_path / "store")))
    migrate(store)
    counters = IngestCounters()
    col = Collector(store, Ingestor(store, counters=counters), counters)
    try:
        yield col
    finally:
        for server in col.servers:
            server.stop(grace=None)
        store.close()


def push_stub(address: str, channel_credentials: grpc.ChannelCredentials | None = None) -> tuple[grpc.Channel, Any]:
    """A channel and a Push callable speaking the real protocol (what the agent sends)."""
    if channel_credentials is None:
        channel = grpc.insecure_channel(address, compression=grpc.Compression.Gzip)
    else:
        channel = grpc.secure_channel(address, channel_credentials, compression=grpc.Compression.Gzip)
    push = channel.unary_unary(
        PUSH_METHOD,
        request_serializer=ingest_pb2.Batch.SerializeToString,
        response_deserializer=ingest_pb2.Ack.FromString,
    )
    return channel, push


def agent_batch(
    agent: AgentIdentity, pid: int, rows: int = 20, *, service: str = "sim", seq: int = 0
) -> ingest_pb2.Batch:
    """A batch encoded by the agent's own encoder: ``rows`` rows, 1..3 samples each, over a few stacks."""
    now = int(time.time())
    stacks = [
        (Frame("<module>", "train.py", 1), Frame("train", "train.py", 20), Frame(f"step_{k}", "model.py", 40 + k))
        for k in range(5)
    ]
    process = ProcessInfo(
        pid=pid, ppid=1, start_time_ms=(now - 60) * 1000, cmdline=f"python train.py --rank {pid}",
        labels={"service": service, "rank": str(pid % 8), "run": f"seq-{seq}"},
    )  # fmt: skip
    sample_rows = [
        SampleRow(now - (i % 3), pid, 100 + i % 4, "MainThread", stacks[i % len(stacks)], Kind.CPU, 1 + i % 3)
        for i in range(rows)
    ]
    return encode(sample_rows, [process], agent)


# --------------------------------------------------------------------------- `flamehouse server` subprocess


class ServerProcess:
    """A `flamehouse server` that can be killed and restarted on the same ports and data dir."""

    def __init__(self, data: Path, *extra: str) -> None:
        self.data, self.extra = data, list(extra)
        self.grpc_port, self.http_port = free_port(), free_port()
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log = data / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        data.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60.0) -> float:
        """Starts and waits for /healthz; returns the seconds it took."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *FLAMEHOUSE, "server", "--data-dir", str(self.data),
                    "--grpc-listen", self.grpc, "--http-listen", f"127.0.0.1:{self.http_port}", *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        while True:
            try:
                if self.get("/healthz", token="")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() - started < timeout, "server did not become healthy"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM: graceful shutdown; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=30)

    def get(self, path: str, token: str = "", **params: str) -> tuple[int, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stored(self, service: str, token: str = "") -> int:
        status, top = self.get("/api/v1/top", token=token, selector=f'{{service="{service}"}}', **{"from": "now-1h"})
        assert status == 200, top
        return int(top["total_samples"])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory of ServerProcess; every one is stopped after the test."""
    made: list[ServerProcess] = []

    def make(*extra: str, data: Path | None = None) -> ServerProcess:
        srv = ServerProcess(data or tmp_path / f"server-{len(made)}", *extra)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(timeout=30)


# --------------------------------------------------------------------------- `flamehouse run`


def run_args(collector: str, service: str, stats: Path, spool: Path, *flags: str, window: int = 1) -> list[str]:
    """`flamehouse run` profiling tests/scripts/known_split.py, with its own spool directory."""
    return [
        *FLAMEHOUSE, "run", "--collector", collector, "--service", service, "--window", str(window),
        "--spool-dir", str(spool), "--stats-file", str(stats), *flags,
    ]  # fmt: skip


def known_split(seconds: float) -> list[str]:
    return ["--", sys.executable, str(SCRIPTS / "known_split.py"), str(seconds)]


# --------------------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    #: A CA that signed nothing of ours: verifying the server with it must fail.
    other_ca: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost (in the SAN) signed by it, and an unrelated CA."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca = _make_ca(d, "flamehouse-test-ca")
    _, other_ca = _make_ca(d, "unrelated-ca")
    key, csr, cert, ext = d / "server.key", d / "server.csr", d / "server.pem", d / "server.ext"
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
    )  # fmt: skip
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return Certs(ca=ca, server_cert=cert, server_key=key, other_ca=other_ca)

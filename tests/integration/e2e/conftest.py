"""Fixtures for end-to-end tests: a real `flamehouse server` subprocess on loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLAMEHOUSE = [sys.executable, "-m", "flamehouse.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, grpc_port: int, http_port: int) -> None:
        self.grpc = f"127.0.0.1:{grpc_port}"
        self.url = f"http://127.0.0.1:{http_port}"

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("data")
    grpc_port, http_port = free_port(), free_port()
    with (data / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [*FLAMEHOUSE, "server", "--data-dir", str(data),
             "--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        srv = Server(grpc_port, http_port)
        deadline = time.monotonic() + 60
        while True:
            try:
                if srv.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (data / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(0.2)
        yield srv
        proc.terminate()
        assert proc.wait(timeout=30) == 0, (data / "server.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_profiled(
    server: Server, tmp_path: Path, service: str, *cmd: str, window: int = 2
) -> tuple[int, dict[str, int]]:
    stats = tmp_path / f"{service}.json"
    done = subprocess.run(
        [
            *FLAMEHOUSE,
            "run",
            "--collector",
            server.grpc,
            "--service",
            service,
            "--label",
            "suite=e2e",
            "--window",
            str(window),
            "--stats-file",
            str(stats),
            "--",
            *cmd,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(stats.read_text())

"""The GPU-aware HTTP routes and ``flamehouse query lines`` over a real chDB store.

The store holds the scenario of :mod:`tests.integration.collector.test_gpu_query`
(pid 101 loads batches while its GPU idles and trains while it is busy).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from flamehouse import commands
from flamehouse.cli import build_parser
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.ui.app import create_app
from flamehouse.ui.client import ApiClient
from tests.integration.collector.test_gpu_query import BUSY, IDLE, NONE, seed_gpu_scenario

with warnings.catch_warnings():
    # starlette asks for `httpx2`; the dev extra pins `httpx`, which still works
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, int]]:
    path: Path = tmp_path_factory.mktemp("gpu_api")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        yield store, seed_gpu_scenario(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(seeded: tuple[Store, int]) -> Iterator[TestClient]:
    with TestClient(create_app(QueryService(seeded[0]))) as client:
        yield client


@pytest.fixture(scope="module")
def t0(seeded: tuple[Store, int]) -> int:
    return seeded[1]


def test_top_and_flamegraph_take_gpu_state(client: TestClient, t0: int) -> None:
    window = {"from": str(t0), "to": str(t0 + 60), "selector": '{pid="101"}'}
    idle = client.get("/api/v1/top", params={**window, "gpu_state": "idle"}).json()
    assert idle["total_samples"] == 70 and idle["functions"][0]["function"] == "load_batch"
    busy = client.get("/api/v1/top", params={**window, "gpu_state": "busy"}).json()
    assert busy["functions"][0] == {"function": "train_step", "file": "model.py", "self": 50, "total": 50}
    flame = client.get("/api/v1/flamegraph", params={**window, "gpu_state": "idle", "gpu_idle_below": 95}).json()
    assert flame["total_samples"] == 70 + 50  # at 95 % the busy seconds (90 %) count as idle too


def test_lines_shape(client: TestClient, t0: int) -> None:
    response = client.get("/api/v1/lines", params={"from": str(t0), "to": str(t0 + 60), "limit": 2, "rate": 100})
    assert response.status_code == 200
    assert response.json() == {
        "total_samples": IDLE + BUSY + NONE,
        "rate": 100.0,
        "lines": [
            {"file": "eval.py", "line": 7, "function": "evaluate", "self": 80, "total": 80,
             "cpu_seconds": 0.8, "gpu_busy_seconds": 0.8, "gpu_idle_seconds": 0.0},
            {"file": "data.py", "line": 10, "function": "load_batch", "self": 70, "total": 70,
             "cpu_seconds": 0.7, "gpu_busy_seconds": 0.0, "gpu_idle_seconds": 0.7},
        ],
    }  # fmt: skip


def test_gpu_shape(client: TestClient, t0: int) -> None:
    body = client.get("/api/v1/gpu", params={"selector": '{pid="101"}', "from": str(t0), "to": str(t0 + 20)}).json()
    assert body["step"] == 1
    [device] = body["devices"]
    assert {k: device[k] for k in ("host", "index", "uuid", "name")} == {
        "host": "node-a", "index": 0, "uuid": "GPU-a0", "name": "H200"
    }  # fmt: skip
    assert set(device["series"]) == {"time", "sm_util", "mem_util", "mem_used", "mem_total", "power_w", "temperature_c"}
    assert device["series"]["time"] == list(range(t0, t0 + 20))
    assert device["series"]["sm_util"][:4] == [0.0, 90.0, 0.0, 90.0]
    [process] = body["processes"]
    assert (process["host"], process["pid"], process["index"]) == ("node-a", 101, 0)
    assert set(process["series"]) == {"time", "sm_util", "mem_used"}
    nulls = client.get("/api/v1/gpu", params={"from": str(t0 + 30), "to": str(t0 + 31)}).json()
    assert [d["series"]["sm_util"] for d in nulls["devices"]] == [[None], [None]]


def test_timeline_shape(client: TestClient, t0: int) -> None:
    params = {"selector": '{service="loader"}', "from": str(t0), "to": str(t0 + 4), "step": 2}
    assert client.get("/api/v1/timeline", params=params).json() == {
        "step": 2,
        "time": [t0, t0 + 2],
        "samples": [5, 5],
        "gpu_util": [45.0, 45.0],  # GPU 1 only: 90 % then 0 %
    }


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/top", {"gpu_state": "wasted"}, "invalid gpu_state 'wasted': expected one of any, busy, idle, none"),
        ("/api/v1/flamegraph", {"gpu_state": "idle", "gpu_idle_below": 150}, "between 0 and 100, got 150"),
        ("/api/v1/lines", {"gpu_idle_below": "lots"}, "gpu_idle_below: Input should be a valid number"),
        ("/api/v1/lines", {"gpu_idle_below": "nan"}, "gpu_idle_below must be a percentage"),
        ("/api/v1/lines", {"rate": -5}, "rate must be a sampling rate"),
        ("/api/v1/lines", {"limit": 0}, "limit must be between 1 and 10000"),
        ("/api/v1/gpu", {"step": 0}, "step must be between 1 and"),
        ("/api/v1/gpu", {"step": "1s"}, "step: Input should be a valid integer"),
        ("/api/v1/timeline", {"from": "now-7d", "step": 1}, "at most 11000: use step >= 55"),
        ("/api/v1/timeline", {"kind": "gpu"}, "invalid kind 'gpu'"),
        ("/api/v1/gpu", {"selector": '{host=~"("}'}, "invalid regular expression for host"),
    ],
)
def test_bad_input_is_400_with_message(client: TestClient, path: str, params: dict[str, object], message: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_openapi_documents_the_new_parameters(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/top", "/api/v1/flamegraph", "/api/v1/lines"):
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert {"gpu_state", "gpu_idle_below"} <= set(params), path
        assert "idle" in params["gpu_state"]["description"]
    lines = {p["name"]: p for p in paths["/api/v1/lines"]["get"]["parameters"]}
    assert set(lines) == {"selector", "from", "to", "kind", "gpu_state", "gpu_idle_below", "limit", "rate"}
    for path in ("/api/v1/gpu", "/api/v1/timeline"):
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert "600 points" in params["step"]["description"]
        assert "400" in paths[path]["get"]["responses"]


@pytest.fixture(scope="module")
def server_url(seeded: tuple[Store, int]) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, stopped at the end."""
    config = uvicorn.Config(create_app(QueryService(seeded[0])), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-gpu-test", daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_api_client_gpu_methods(server_url: str, t0: int) -> None:
    api = ApiClient(server_url, timeout=10)
    window = (str(t0), str(t0 + 60))
    assert api.top('{pid="101"}', *window, gpu_state="idle")["total_samples"] == 70
    lines = api.lines('{pid="104"}', *window, gpu_idle_below=50, rate=80, limit=1)
    assert lines["lines"][0]["function"] == "evaluate" and lines["lines"][0]["gpu_idle_seconds"] == 1.0
    assert [d["index"] for d in api.gpu('{service="loader"}', *window, step=30)["devices"]] == [1]
    assert api.timeline('{pid="101"}', str(t0), str(t0 + 20), step=10)["samples"] == [60, 60]


def _cli(*argv: str) -> int:
    return commands.query(build_parser().parse_args(["query", *argv]))


def test_cli_query_lines_with_prices(server_url: str, t0: int, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--server", server_url, "--from", str(t0), "--to", str(t0 + 60), "--rate", "10"]
    code = _cli("lines", *window, "--limit", "3", "--price-core-hour", "3.6", "--price-gpu-hour", "36")
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"total samples: {IDLE + BUSY + NONE} (rate 10/s)"
    assert out[1].split() == ["SELF", "CPU-s", "GPU-busy-s", "GPU-idle-s", "CPU", "$", "GPU-idle", "$", "FUNCTION",
                              "FILE:LINE"]  # fmt: skip
    # 80 samples at 10/s = 8 CPU-s = 8/3600 h x $3.6 = $0.008; load_batch idles its GPU 7 s x $36/h = $0.07
    assert out[2].split() == ["80", "8.00", "8.00", "0.00", "0.0080", "0.0000", "evaluate", "eval.py:7"]
    assert out[3].split() == ["70", "7.00", "0.00", "7.00", "0.0070", "0.0700", "load_batch", "data.py:10"]
    assert out[4].split() == ["60", "6.00", "0.00", "0.00", "0.0060", "0.0000", "parse", "etl.py:3"]
    assert out[5] == "sum over these 3 lines: CPU $ 0.0210, GPU-idle $ 0.0700"


def test_cli_query_top_and_lines_by_gpu_state(server_url: str, t0: int, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--server", server_url, "--from", str(t0), "--to", str(t0 + 60), "--selector", '{pid="101"}']
    assert _cli("top", *window, "--gpu-state", "idle") == 0
    top = capsys.readouterr().out.splitlines()
    assert top[0] == "total samples: 70" and top[2].split()[4] == "load_batch"
    assert _cli("lines", *window, "--gpu-state", "busy", "--json") == 0
    body = capsys.readouterr().out
    assert '"function": "train_step"' in body and "load_batch" not in body
    with pytest.raises(commands.UsageError, match="gpu_idle_below must be a percentage"):
        _cli("lines", *window, "--gpu-idle-below", "200")
    with pytest.raises(commands.UsageError, match="--price-gpu-hour must be a price of 0 or more"):
        _cli("lines", *window, "--price-gpu-hour", "-1")

"""The HTTP API over a real chDB store, through FastAPI's TestClient."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.ui.app import create_app
from flamehouse.ui.client import ApiClient, ApiError
from tests.integration.collector.test_query import RECENT_CPU, seed_profiles

with warnings.catch_warnings():
    # starlette asks for `httpx2`; the dev extra pins `httpx`, which still works
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("api")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        seed_profiles(store)
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("flamehouse_ingest_batches", "batches (registered by another component)", registry=registry).inc()
    return registry


@pytest.fixture(scope="module")
def client(store: Store, registry: CollectorRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(QueryService(store), ready=store.ping, registry=registry)) as client:
        yield client


def test_top_shape(client: TestClient) -> None:
    response = client.get("/api/v1/top", params={"selector": '{service="trainer"}', "from": "now-1h", "limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "total_samples": 28,
        "functions": [
            {"function": "matmul", "file": "ops.py", "self": 16, "total": 16},
            {"function": "forward", "file": "model.py", "self": 5, "total": 21},
        ],
    }


def test_flamegraph_shape(client: TestClient) -> None:
    response = client.get("/api/v1/flamegraph", params={"kind": "wall"})
    assert response.status_code == 200
    assert response.json() == {
        "total_samples": 7,
        "truncated": False,
        "root": {
            "name": "all",
            "file": "",
            "self": 0,
            "total": 7,
            "children": [
                {
                    "name": "main",
                    "file": "m.py",
                    "self": 0,
                    "total": 7,
                    "children": [{"name": "sleep", "file": "time.py", "self": 7, "total": 7, "children": []}],
                }
            ],
        },
    }
    capped = client.get("/api/v1/flamegraph", params={"max_nodes": 1}).json()
    assert capped["truncated"] and capped["root"]["total"] == RECENT_CPU


def test_labels_and_values(client: TestClient) -> None:
    assert client.get("/api/v1/labels").json() == {
        "labels": ["host", "job", "kind", "pid", "rank", "service", "team", "thread", "zone"]
    }
    response = client.get("/api/v1/labels/host/values", params={"selector": '{host=~"gpu-.*"}'})
    assert response.json() == {"name": "host", "values": ["gpu-1", "gpu-2"]}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/top", {"selector": '{host "x"}'}, "expected one of = != =~ !~, found '\"' at position 6"),
        ("/api/v1/top", {"selector": '{host=~"(?=x)"}'}, "invalid regular expression for host"),
        ("/api/v1/top", {"from": "yesterday"}, "invalid time 'yesterday'"),
        ("/api/v1/top", {"from": "now", "to": "now-1h"}, "'from' must be before 'to'"),
        ("/api/v1/top", {"kind": "gpu"}, "invalid kind 'gpu': expected one of cpu, wall"),
        ("/api/v1/top", {"limit": 0}, "limit must be between 1 and 10000"),
        ("/api/v1/top", {"limit": "many"}, "limit: Input should be a valid integer"),
        ("/api/v1/flamegraph", {"max_nodes": 10**9}, "max_nodes must be between 1 and 100000"),
        ("/api/v1/flamegraph", {"to": "2026-01-01T00:00:00"}, "no UTC offset"),
        ("/api/v1/labels", {"from": "now-500d"}, "at most 400 days"),
        ("/api/v1/labels/bad-name/values", {}, "invalid label name 'bad-name'"),
    ],
)
def test_bad_input_is_400_with_message(client: TestClient, path: str, params: dict[str, object], message: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(max_size=40)
    | st.builds(
        lambda name, op, value: "{" + name + op + '"' + value + '"}',
        st.sampled_from(["host", "pid", "team", "kind", "x"]),
        st.sampled_from(["=", "!=", "=~", "!~"]),
        st.text(max_size=20),
    )
)
def test_hostile_selectors_never_500(client: TestClient, selector: str) -> None:
    response = client.get("/api/v1/top", params={"selector": selector})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]


def test_healthz(store: Store) -> None:
    ready = {"ok": True}
    with TestClient(create_app(QueryService(store), ready=lambda: ready["ok"])) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready["ok"] = False
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_store_failure_is_503(store: Store) -> None:
    # same chDB engine (one data path per process), a database that was never migrated
    broken = Store(StoreConfig(dsn=store.config.dsn, database="never_migrated"))
    try:
        with TestClient(create_app(QueryService(broken))) as client:
            response = client.get("/api/v1/top")
            assert response.status_code == 503
            assert response.json()["error"].startswith("store unavailable")
    finally:
        broken.close()


def test_metrics(client: TestClient) -> None:
    client.get("/api/v1/top", params={"kind": "nope"})
    client.get("/api/v1/labels/host/values")
    client.get("/no/such/page")
    text = client.get("/metrics").text
    assert 'flamehouse_http_requests_total{route="/api/v1/top",status="400"}' in text
    assert 'flamehouse_http_requests_total{route="/api/v1/labels/{name}/values",status="200"}' in text
    assert 'flamehouse_http_requests_total{route="unmatched",status="404"}' in text
    assert "flamehouse_http_request_duration_seconds_bucket" in text
    assert "flamehouse_ingest_batches_total 1.0" in text  # the shared registry is exposed


def test_openapi_documents_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/v1/top"]["get"]["parameters"]}
    assert set(params) == {"selector", "from", "to", "kind", "limit", "gpu_state", "gpu_idle_below"}
    assert "RFC 3339" in params["from"]["description"]
    assert "400" in spec["paths"]["/api/v1/top"]["get"]["responses"]


@pytest.fixture(scope="module")
def server_url(store: Store) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, stopped at the end."""
    config = uvicorn.Config(create_app(QueryService(store)), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
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


def test_api_client_over_real_http(server_url: str) -> None:
    api = ApiClient(server_url, timeout=10)
    top = api.top('{host=~"gpu-.*"}', "now-1h", None, "cpu", 1)
    assert top == {
        "total_samples": 28,
        "functions": [{"function": "matmul", "file": "ops.py", "self": 16, "total": 16}],
    }
    assert api.flamegraph(kind="wall")["root"]["total"] == 7
    assert api.labels()[:2] == ["host", "job"]
    assert api.label_values("rank", '{service="trainer"}') == ["0", "1"]


def test_api_client_carries_the_server_message(server_url: str) -> None:
    api = ApiClient(server_url, timeout=10)
    with pytest.raises(ApiError) as caught:
        api.top('{host="x"', kind="cpu")
    assert caught.value.status == 400
    assert caught.value.message == "expected ',' or '}', found end of input at position 9"


def test_api_client_unreachable_server() -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient("http://127.0.0.1:9", timeout=2).top()
    assert caught.value.status == 0 and "cannot reach" in caught.value.message
    with pytest.raises(ValueError, match="http"):
        ApiClient("file:///etc/passwd")

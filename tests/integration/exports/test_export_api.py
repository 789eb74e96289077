"""GET /api/v1/export over a real chDB store: every format, exact counts, headers and 400s."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from flamehouse.collector.export_query import MAX_EXPORT_STACKS, ExportQuery
from flamehouse.collector.ingest import Ingestor
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.ui.app import create_app
from flamehouse.ui.formats import FORMATS
from tests.builders import Sample, make_batch
from tests.integration.collector.test_query import seed_profiles
from tests.unit.formats.test_formats import DECODERS

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

THREADED = '{service="threaded"}'
STEP = ("step", "/job/train.py", 12)
LOAD = ("load", "/job/data.py", 3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("exports")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        seed_profiles(store)  # includes a stack never stored and a frame never stored
        now = int(time.time())
        samples = [
            Sample(now - 5, 7, 70, "MainThread", [("<module>", "/job/train.py", 40), STEP], "cpu", 30),
            Sample(now - 4, 7, 70, "MainThread", [("<module>", "/job/train.py", 40), STEP], "cpu", 10),
            Sample(now - 4, 7, 71, "loader", [LOAD], "cpu", 8),
        ]
        Ingestor(store).push(make_batch(samples, batch_id="threaded", processes={7: {"service": "threaded"}}))
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(QueryService(store))) as client:
        yield client


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("selector", ["", '{service="trainer"}', THREADED])
def test_exports_hold_every_selected_sample(client: TestClient, fmt: str, selector: str) -> None:
    top = client.get("/api/v1/top", params={"selector": selector}).json()
    response = client.get("/api/v1/export", params={"format": fmt, "selector": selector})
    assert response.status_code == 200, response.text
    output = FORMATS[fmt]
    assert response.headers["content-type"].startswith(output.media_type.split(";")[0])
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="flamehouse-cpu-') and disposition.endswith(
        f'.{output.extension}"'
    )
    decoded = DECODERS[fmt](response.content)
    assert sum(decoded.values()) == top["total_samples"] > 0  # stacks or frames never stored still count


def test_unknown_stacks_and_frames_are_named(client: TestClient) -> None:
    text = client.get("/api/v1/export", params={"format": "folded", "from": "now-2d"}).text
    assert "<unknown stack> 3\n" in text  # the seeded sample whose stack never arrived
    assert "<unknown " in text.replace("<unknown stack>", "")  # the frame never stored: <unknown HEX>


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_per_thread_exports_keep_threads(client: TestClient, fmt: str) -> None:
    content = client.get("/api/v1/export", params={"format": fmt, "selector": THREADED, "per_thread": "true"}).content
    by_thread: dict[str, int] = {}
    for (thread, _frames), count in DECODERS[fmt](content).items():
        by_thread[thread] = by_thread.get(thread, 0) + count
    assert by_thread == {"MainThread": 40, "loader": 8}


@pytest.mark.parametrize(
    "params",
    [
        {"selector": '{service="trainer", gpu_state="none"}'},
        {"selector": '{service="trainer"}', "gpu_state": "none"},
        {"selector": '{service="loader", kind="wall"}'},
        {"selector": '{service="loader"}', "kind": "wall"},
    ],
)
def test_kind_and_gpu_state_select_as_in_top(client: TestClient, params: dict[str, str]) -> None:
    top = client.get("/api/v1/top", params=params).json()
    response = client.get("/api/v1/export", params={"format": "folded", **params})
    assert response.status_code == 200, response.text
    assert sum(DECODERS["folded"](response.content).values()) == top["total_samples"] > 0
    kind = "wall" if "wall" in str(params) else "cpu"
    assert f'filename="flamehouse-{kind}-' in response.headers["content-disposition"]


def test_pprof_time_follows_the_rate(client: TestClient) -> None:
    import gzip

    from flamehouse.proto import profile_pb2

    content = client.get("/api/v1/export", params={"format": "pprof", "selector": THREADED, "rate": "50"}).content
    message = profile_pb2.Profile.FromString(gzip.decompress(content))
    assert message.period == 20_000_000
    assert sum(s.value[1] for s in message.sample) == 48 * 20_000_000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "svg"}, "format"),
        ({"format": "pprof", "rate": "0"}, "rate must be above 0"),
        ({"format": "pprof", "rate": "nan"}, "rate must be above 0"),
        ({"format": "folded", "selector": '{service="x"'}, "expected"),
        ({"format": "folded", "kind": "gpu"}, "invalid kind"),
        ({"format": "folded", "from": "yesterday"}, "invalid time"),
        ({"format": "folded", "per_thread": "maybe"}, "per_thread"),
        (
            {"format": "folded", "per_thread": "true", "gpu_state": "idle"},
            "per-thread export cannot filter by gpu_state",
        ),
        ({"format": "folded", "selector": '{kind="cpu"}', "kind": "wall"}, "give it in one place"),
    ],
)
def test_bad_requests_are_400_with_a_message(client: TestClient, params: dict[str, str], message: str) -> None:
    response = client.get("/api/v1/export", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_openapi_documents_the_export(client: TestClient) -> None:
    route = client.get("/openapi.json").json()["paths"]["/api/v1/export"]["get"]
    params = {p["name"]: p for p in route["parameters"]}
    assert set(params) >= {"format", "selector", "from", "to", "kind", "per_thread", "rate"}
    assert params["format"]["schema"]["enum"] == ["speedscope", "pprof", "folded"]
    assert all(p.get("description") for p in params.values())


def test_too_many_stacks_is_a_clear_error(store: Store) -> None:
    from flamehouse.collector import QueryError

    assert MAX_EXPORT_STACKS >= 100_000
    with pytest.raises(QueryError, match="more than 2 distinct stacks: narrow the selector"):
        ExportQuery(store).stacks("", "now-2d", None, max_stacks=2)

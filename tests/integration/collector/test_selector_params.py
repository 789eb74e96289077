"""Selector special labels against a real chDB, and properties of hostile input through the HTTP API.

``kind`` and ``gpu_state`` written in a selector are the query parameters of
the same name; the GPU scenario of test_gpu_query gives every GPU state known
counts. The properties throw random and hostile text at every route taking a
selector (HTTP 400 with a message, never 500) and check that no value changes
the SQL sent to ClickHouse, only its parameters.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flamehouse.collector import QueryError
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.ui.app import create_app
from tests.integration.collector.test_gpu_query import BUSY, IDLE, NONE, seed_gpu_scenario

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


class RecordingStore:
    """A store that remembers the SQL text of every query (parameters travel apart)."""

    def __init__(self, store: Store) -> None:
        self.inner, self.db, self.config = store, store.db, store.config
        self.sql: list[str] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.sql.append(sql)
        return self.inner.query(sql, parameters)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, int]]:
    path: Path = tmp_path_factory.mktemp("selector_params")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        yield store, seed_gpu_scenario(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(scenario: tuple[Store, int]) -> Iterator[TestClient]:
    with TestClient(create_app(QueryService(scenario[0]))) as client:
        yield client


def _span(t0: int) -> dict[str, str]:
    return {"from": str(t0), "to": str(t0 + 60)}


@pytest.mark.parametrize("state", ["busy", "idle", "none", "any"])
def test_gpu_state_in_the_selector_equals_the_parameter(scenario: tuple[Store, int], state: str) -> None:
    store, t0 = scenario
    queries, span = QueryService(store), (str(t0), str(t0 + 60))
    in_selector = queries.top(f'{{host="node-a", gpu_state="{state}"}}', *span)
    as_parameter = queries.top('{host="node-a"}', *span, gpu_state=state)
    assert in_selector == as_parameter
    both = queries.flamegraph(f'{{gpu_state="{state}"}}', *span, gpu_state=state)
    assert both == queries.flamegraph("", *span, gpu_state=state)
    lines = queries.lines(f'{{gpu_state="{state}"}}', *span).to_json()
    assert lines == queries.lines("", *span, gpu_state=state).to_json()
    assert queries.top(f'{{gpu_state="{state}"}}', *span).total_samples == {
        "busy": BUSY, "idle": IDLE, "none": NONE, "any": IDLE + BUSY + NONE
    }[state]  # fmt: skip


def test_kind_in_the_selector_equals_the_parameter(scenario: tuple[Store, int]) -> None:
    store, t0 = scenario
    queries, span = QueryService(store), (str(t0), str(t0 + 60))
    assert queries.top('{kind="wall"}', *span).total_samples == 0 == queries.top("", *span, kind="wall").total_samples
    assert queries.top('{kind="cpu"}', *span) == queries.top("", *span)
    timeline = queries.timeline('{kind="wall"}', *span, step=60).to_json()
    assert timeline["samples"] == [0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, s: q.top('{gpu_state="idle"}', *s, gpu_state="busy"),
         "gpu_state is 'busy' as a parameter but 'idle' in the selector"),
        (lambda q, s: q.flamegraph('{kind="wall"}', *s, kind="cpu"), "kind is 'cpu' as a parameter but 'wall'"),
        (lambda q, s: q.lines('{kind="wall"}', *s, kind="cpu"), "kind is 'cpu' as a parameter"),
        (lambda q, s: q.label_values("host", '{gpu_state="idle"}', *s), "does not filter by gpu_state"),
        (lambda q, s: q.gpu('{gpu_state="idle"}', *s), "does not filter by gpu_state"),
        (lambda q, s: q.top('{gpu_state=~"idle"}', *s), "expected '=' after gpu_state: it is a query parameter and takes one value at position 10"),
        (lambda q, s: q.top("", *s, gpu_state="asleep"), "invalid gpu_state 'asleep'"),
    ],
)  # fmt: skip
def test_conflicts_and_misuse_say_what_to_fix(scenario: tuple[Store, int], call: Any, message: str) -> None:
    store, t0 = scenario
    with pytest.raises(QueryError, match=re.escape(message)):
        call(QueryService(store), (str(t0), str(t0 + 60)))


def test_api_merges_and_refuses_conflicts(client: TestClient, scenario: tuple[Store, int]) -> None:
    span = _span(scenario[1])
    via_selector = client.get("/api/v1/top", params={**span, "selector": '{service="trainer", gpu_state="idle"}'})
    via_parameter = client.get("/api/v1/top", params={**span, "selector": '{service="trainer"}', "gpu_state": "idle"})
    assert via_selector.status_code == 200 and via_selector.json() == via_parameter.json()
    assert via_selector.headers["X-Flamehouse-Source"] == "samples"
    conflict = client.get("/api/v1/top", params={**span, "selector": '{gpu_state="idle"}', "gpu_state": "any"})
    assert conflict.status_code == 400
    assert "gpu_state is 'any' as a parameter but 'idle' in the selector" in conflict.json()["error"]
    by_line = client.get("/api/v1/flamegraph", params={**span, "by": "line", "selector": '{kind="cpu"}'})
    assert by_line.status_code == 200 and by_line.json()["root"]["children"][0]["line"] == 1


# --- properties ----------------------------------------------------------------------------------------

_HOSTILE = st.sampled_from(
    ["'; DROP TABLE samples; --", "{x:String}", "\\'", "') OR 1=1 --", "\x00", "é\n\t", '\\"', "{{", "}"]
)
_TEXT = st.text(max_size=40) | _HOSTILE
_NAMES = st.sampled_from(["service", "job", "host", "pid", "rank", "thread", "kind", "gpu_state", "team", "x"])


def _matcher(name: str, op: str, value: str) -> str:
    return name + op + '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SELECTORS = _TEXT | st.builds(
    lambda parts: "{" + ", ".join(parts) + "}",
    st.lists(st.builds(_matcher, _NAMES, st.sampled_from(["=", "!=", "=~", "!~"]), _TEXT), max_size=3),
)
_ROUTES = st.sampled_from(
    ["/api/v1/top", "/api/v1/flamegraph", "/api/v1/lines", "/api/v1/diff", "/api/v1/labels/host/values"]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_ROUTES, _SELECTORS, _TEXT, st.sampled_from([None, "cpu", "wall", "gpu", "'"]),
       st.sampled_from([None, "any", "idle", "busy", "none", "x"]))  # fmt: skip
def test_hostile_input_is_400_never_500(
    client: TestClient, route: str, selector: str, other: str, kind: str | None, gpu_state: str | None
) -> None:
    params: dict[str, Any] = {"kind": kind, "gpu_state": gpu_state, "by": "line", "from": other or None}
    params |= {"base": selector, "comparison": other} if route.endswith("diff") else {"selector": selector}
    response = client.get(route, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code == 400:
        assert response.json()["error"]


_SHAPES = st.lists(
    st.tuples(
        st.sampled_from(["service", "host", "pid", "thread", "team", "x_y"]), st.sampled_from(["=", "!=", "=~", "!~"])
    ),
    max_size=4,
)
_LITERALS = st.text(max_size=12).filter(lambda v: not any("\ud800" <= c <= "\udfff" for c in v)) | _HOSTILE
_REGEXES = st.from_regex(r"[a-z0-9-]{0,6}(\.\*|\|[a-z]{1,3})?", fullmatch=True)  # always valid RE2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_SHAPES, st.data())
def test_no_value_changes_the_sql(
    scenario: tuple[Store, int], shape: list[tuple[str, str]], data: st.DataObject
) -> None:
    store, t0 = scenario
    span = (str(t0), str(t0 + 3600))  # long enough for the rollup: its SQL is checked too

    def run(values: list[str], kind: str, state: str) -> set[str]:
        recorder = RecordingStore(store)
        queries = QueryService(recorder)  # type: ignore[arg-type]
        parts = [_matcher(name, op, value) for (name, op), value in zip(shape, values, strict=True)]
        selector = "{" + ", ".join([*parts, f'kind="{kind}"', f'gpu_state="{state}"']) + "}"
        queries.top(selector, *span)
        queries.flamegraph(selector, *span, by="line")
        queries.diff(selector, span, selector, span)
        # data, not shape, decides how often a text is sent: a regex is checked once per distinct
        # value, and a profile query that found nothing asks for the plain total once more
        return {sql for sql in recorder.sql if not sql.endswith("SELECT sum(n) FROM counts")}

    def values() -> list[str]:
        return [data.draw(_REGEXES if op in ("=~", "!~") else _LITERALS) for _, op in shape]

    kind, state = data.draw(st.sampled_from(["cpu", "wall"])), data.draw(st.sampled_from(["any", "busy", "idle"]))
    first = run(values(), kind, state)
    # another kind, and another classifying state, never change the text either
    other_state = state if state == "any" else data.draw(st.sampled_from(["busy", "idle", "none"]))
    second = run(values(), "wall" if kind == "cpu" else "cpu", other_state)
    assert first == second
    assert not any("DROP TABLE" in sql or "OR 1=1" in sql for sql in first)

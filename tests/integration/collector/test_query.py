"""The read queries against a real embedded ClickHouse (chDB) holding known rows.

``seed_profiles`` writes samples, stacks and frames straight into the tables
(ids from :mod:`flamehouse.proto.ids`), so every expected number below can be
worked out by hand. Rows sit a few minutes before the real clock because the
tables have a TTL relative to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector import QueryError, SelectorError
from flamehouse.collector.query import FlameNode, QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ids

pytestmark = pytest.mark.integration

Frame = tuple[str, str, int]

MAIN: Frame = ("main", "m.py", 1)
TRAIN: Frame = ("train", "m.py", 5)
TRAIN_6: Frame = ("train", "m.py", 6)  # same function as TRAIN, other line
FORWARD: Frame = ("forward", "model.py", 10)
MATMUL: Frame = ("matmul", "ops.py", 3)
REC_7: Frame = ("rec", "r.py", 7)
REC_8: Frame = ("rec", "r.py", 8)
SLEEP: Frame = ("sleep", "time.py", 1)
GHOST: Frame = ("ghost", "nowhere.py", 1)  # its frame row is never stored

STACKS: dict[str, list[Frame]] = {
    "s1": [MAIN, TRAIN, FORWARD, MATMUL],
    "s2": [MAIN, TRAIN, REC_7, REC_8, REC_7],  # recursion: rec counts once in its total
    "s3": [MAIN, TRAIN_6, FORWARD],
    "s4": [MAIN, SLEEP],
    "ghost": [GHOST],
}
MISSING_STACK = 12345  # a sample whose stack row never arrived


@dataclass(frozen=True)
class Row:
    """One sample row; ``age`` is seconds before the seeding time."""

    stack: str
    count: int
    host: str
    pid: int
    rank: str = ""
    service: str = "trainer"
    job: str = "j1"
    kind: str = "cpu"
    labels: tuple[tuple[str, str], ...] = ()
    age: int = 600


ML = (("team", "ml"),)
ROWS = [
    Row("s1", 10, "gpu-1", 100, "0", labels=ML),
    Row("s2", 4, "gpu-1", 100, "0", labels=ML),
    Row("missing", 3, "gpu-1", 100, "0", labels=ML),
    Row("s1", 6, "gpu-2", 200, "1", labels=(("team", "infra"), ("zone", "a"))),
    Row("s3", 5, "gpu-2", 200, "1", labels=(("team", "infra"), ("zone", "a"))),
    Row("s3", 2, "cpu-1", 300, service="loader", job=""),
    Row("s4", 7, "cpu-1", 300, service="loader", job="", kind="wall"),
    Row("s1", 1000, "gpu-1", 100, "0", age=2 * 86400),
    Row("ghost", 1, "gpu-9", 900, service="ghost", age=86400),
]
#: cpu samples in the default range (the last hour)
RECENT_CPU = 30


def _stack_ids(frames: Sequence[Frame]) -> tuple[int, list[int], list[int]]:
    frame_ids = [ids.frame_id(*f) for f in frames]
    return ids.stack_id(frame_ids), frame_ids, [ids.function_id(f[0], f[1]) for f in frames]


def seed_profiles(store: Store) -> float:
    """Writes ``ROWS`` and their stacks and frames; returns the ``now`` the ages refer to.

    Stacks and frames are written twice, as repeated batches do, to check readers deduplicate.
    """
    now = float(int(time.time()))
    stacks = {name: _stack_ids(frames) for name, frames in STACKS.items()}
    frames = {ids.frame_id(*f): f for fs in STACKS.values() for f in fs if f != GHOST}
    today = date.today()
    for _ in range(2):
        store.insert(
            "frames",
            ["frame_id", "function_id", "function", "file", "line", "last_seen"],
            [
                list(frames),
                [ids.function_id(f[0], f[1]) for f in frames.values()],
                [f[0] for f in frames.values()],
                [f[1] for f in frames.values()],
                [f[2] for f in frames.values()],
                [today] * len(frames),
            ],
        )
        store.insert(
            "stacks",
            ["stack_id", "frame_ids", "function_ids", "last_seen"],
            [
                [s[0] for s in stacks.values()],
                [s[1] for s in stacks.values()],
                [s[2] for s in stacks.values()],
                [today] * len(stacks),
            ],
        )
    columns = ["ts", "service", "job", "host", "pid", "rank", "thread", "tid", "kind", "labels"]
    columns += ["stack_id", "count", "batch_id"]
    data: list[list[Any]] = [[] for _ in columns]
    for row in ROWS:
        stack_id = stacks[row.stack][0] if row.stack in stacks else MISSING_STACK
        values = [datetime.fromtimestamp(now - row.age, tz=UTC), row.service, row.job, row.host, row.pid, row.rank]
        values += ["MainThread", row.pid, row.kind, dict(row.labels), stack_id, row.count, "seed"]
        for column, value in zip(data, values, strict=True):
            column.append(value)
    store.insert("samples", columns, data)
    return now


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryService, float]]:
    path: Path = tmp_path_factory.mktemp("query")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        now = seed_profiles(store)
        yield QueryService(store), now
    finally:
        store.close()


def _top(seeded: tuple[QueryService, float], selector: str = "", **kw: Any) -> dict[str, Any]:
    queries, now = seeded
    kw.setdefault("from_", None)
    kw.setdefault("to", None)
    return dict(queries.top(selector, kw.pop("from_"), kw.pop("to"), now=now, **kw).to_json())


def test_top_self_and_total_with_recursion(seeded: tuple[QueryService, float]) -> None:
    result = _top(seeded)
    assert result["total_samples"] == RECENT_CPU
    assert [(f["function"], f["file"], f["self"], f["total"]) for f in result["functions"]] == [
        ("matmul", "ops.py", 16, 16),
        ("forward", "model.py", 7, 23),
        ("rec", "r.py", 4, 4),
        ("main", "m.py", 0, 27),
        ("train", "m.py", 0, 27),
    ]


def test_top_limit_and_wall_kind(seeded: tuple[QueryService, float]) -> None:
    assert [f["function"] for f in _top(seeded, limit=2)["functions"]] == ["matmul", "forward"]
    wall = _top(seeded, kind="wall")
    assert wall["total_samples"] == 7
    assert wall["functions"][0] == {"function": "sleep", "file": "time.py", "self": 7, "total": 7}


def test_top_names_unknown_functions(seeded: tuple[QueryService, float]) -> None:
    result = _top(seeded, '{service="ghost"}', from_="now-2d")
    assert result["total_samples"] == 1
    [ghost] = result["functions"]
    assert ghost["function"].startswith("<unknown ") and (ghost["self"], ghost["total"]) == (1, 1)


@pytest.mark.parametrize(
    ("selector", "total"),
    [
        ('{host="gpu-1"}', 17),
        ('{host!="gpu-1"}', 13),
        ('{host=~"gpu-.*"}', 28),
        ('{host=~"gpu"}', 0),  # anchored to the whole value
        ('{host=~"gpu-1|cpu-1"}', 19),
        ('{host!~"gpu-.*"}', 2),
        ('{team="ml"}', 17),
        ('{team=""}', 2),  # absent label reads as ""
        ('{team=~"ml|infra", zone!="a"}', 17),
        ('{pid="200"}', 11),
        ('{rank="0", service="trainer"}', 17),
        ('{job=""}', 2),
        ('{thread="MainThread"}', RECENT_CPU),
        ('{kind="wall"}', 7),  # kind in the selector is the kind parameter
        ('{kind="cpu", host="cpu-1"}', 2),
        ("{}", RECENT_CPU),
    ],
)
def test_selectors(seeded: tuple[QueryService, float], selector: str, total: int) -> None:
    assert _top(seeded, selector)["total_samples"] == total


def test_time_filtering(seeded: tuple[QueryService, float]) -> None:
    _, now = seeded
    assert _top(seeded, from_="now-3d")["total_samples"] == RECENT_CPU + 1000 + 1
    old = int(now) - 2 * 86400
    only_old = _top(seeded, from_=str(old), to=str(old + 1))
    assert only_old["total_samples"] == 1000
    assert only_old["functions"][0] == {"function": "matmul", "file": "ops.py", "self": 1000, "total": 1000}
    iso = datetime.fromtimestamp(old + 1, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _top(seeded, from_="now-3d", to=iso)["total_samples"] == 1000
    assert _top(seeded, to="now-11m")["total_samples"] == 0


def _shape(node: FlameNode) -> tuple[str, int, int, list[Any]]:
    return (node.name, node.self_samples, node.total_samples, [_shape(c) for c in node.children])


def test_flamegraph_tree(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    result = queries.flamegraph("", None, None, now=now)
    assert result.total_samples == RECENT_CPU and not result.truncated
    assert _shape(result.root) == (
        "all", 3, 30, [
            ("main", 0, 27, [
                ("train", 0, 27, [
                    ("forward", 7, 23, [("matmul", 16, 16, [])]),
                    ("rec", 0, 4, [("rec", 0, 4, [("rec", 4, 4, [])])]),
                ]),
            ]),
        ],
    )  # fmt: skip
    assert result.root.children[0].file == "m.py"
    assert result.to_json()["root"]["children"][0]["children"][0]["name"] == "train"


def test_flamegraph_max_nodes_keeps_the_largest(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    result = queries.flamegraph("", None, None, now=now, max_nodes=3)
    assert result.truncated and result.total_samples == RECENT_CPU
    assert _shape(result.root) == ("all", 3, 30, [("main", 0, 27, [("train", 0, 27, [("forward", 7, 23, [])])])])


def test_flamegraph_selector_and_empty(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    wall = queries.flamegraph('{service="loader"}', None, None, kind="wall", now=now)
    assert _shape(wall.root) == ("all", 0, 7, [("main", 0, 7, [("sleep", 7, 7, [])])])
    empty = queries.flamegraph('{service="nobody"}', None, None, now=now)
    assert _shape(empty.root) == ("all", 0, 0, [])


def test_labels(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    every = ["host", "job", "kind", "pid", "rank", "service", "team", "thread", "zone"]
    assert queries.labels(None, None, now=now) == every
    assert queries.labels("now-3d", "now-1d", now=now) == ["host", "job", "kind", "pid", "rank", "service", "thread"]
    assert queries.labels("now-5m", None, now=now) == []


def test_label_values(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    assert queries.label_values("host", now=now) == ["cpu-1", "gpu-1", "gpu-2"]
    assert queries.label_values("team", '{service="trainer"}', now=now) == ["infra", "ml"]
    assert queries.label_values("pid", now=now) == ["100", "200", "300"]
    assert queries.label_values("kind", now=now) == ["cpu", "wall"]
    assert queries.label_values("zone", now=now) == ["a"]
    assert queries.label_values("host", "", "now-3d", now=now, limit=2) == ["cpu-1", "gpu-1"]
    assert queries.label_values("nothing", now=now) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, now: q.top("", None, None, kind="gpu", now=now), "invalid kind 'gpu'"),
        (lambda q, now: q.top("", None, None, limit=0, now=now), "limit must be between 1 and 10000"),
        (lambda q, now: q.top("", None, None, limit=10_001, now=now), "limit must be between 1 and 10000"),
        (lambda q, now: q.flamegraph("", None, None, max_nodes=0, now=now), "max_nodes must be between"),
        (lambda q, now: q.top('{host=~"(?=x)"}', None, None, now=now), "invalid regular expression for host"),
        (lambda q, now: q.top("", "later", None, now=now), "invalid time 'later'"),
        (lambda q, now: q.label_values("bad-name", now=now), "invalid label name"),
        (lambda q, now: q.label_values("host", "{host=}", now=now), "at position 6"),
    ],
)
def test_bad_input_is_a_query_error(seeded: tuple[QueryService, float], call: Any, message: str) -> None:
    queries, now = seeded
    with pytest.raises(QueryError, match=message):
        call(queries, now)


def test_selector_error_carries_position(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    with pytest.raises(SelectorError) as caught:
        queries.top('{host "x"}', None, None, now=now)
    assert caught.value.position == 6


def test_hostile_values_are_only_data(seeded: tuple[QueryService, float]) -> None:
    for value in ["'; DROP TABLE samples; --", "{x:String}", "\\'", "') OR 1=1 --"]:
        quoted = '"' + value.replace("\\", "\\\\") + '"'
        assert _top(seeded, "{host=" + quoted + "}")["total_samples"] == 0
        assert _top(seeded, "{team!=" + quoted + "}")["total_samples"] == RECENT_CPU
    assert _top(seeded)["total_samples"] == RECENT_CPU  # the table is still there

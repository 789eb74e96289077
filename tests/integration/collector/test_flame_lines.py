"""The flame graph split by source line (``by=line``), and cost per line, over the seeded profiles of test_query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector import QueryError
from flamehouse.collector.query import FlameNode, QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from tests.integration.collector.test_query import RECENT_CPU, seed_profiles

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryService, float]]:
    path: Path = tmp_path_factory.mktemp("lines")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        now = seed_profiles(store)
        yield QueryService(store), now
    finally:
        store.close()


def _shape(node: FlameNode) -> tuple[Any, ...]:
    return (node.name, node.line, node.self_samples, node.total_samples, [_shape(c) for c in node.children])


def test_by_line_splits_a_function_per_line(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    result = queries.flamegraph("", None, None, now=now, by="line")
    assert result.total_samples == RECENT_CPU and not result.truncated
    assert _shape(result.root) == (
        "all", None, 3, 30, [
            ("main", 1, 0, 27, [
                ("train", 5, 0, 20, [  # s1 (16) and s2 (4) run train at line 5
                    ("forward", 10, 0, 16, [("matmul", 3, 16, 16, [])]),
                    ("rec", 7, 0, 4, [("rec", 8, 0, 4, [("rec", 7, 4, 4, [])])]),
                ]),
                ("train", 6, 0, 7, [("forward", 10, 7, 7, [])]),  # s3 at line 6
            ]),
        ],
    )  # fmt: skip
    node = result.to_json()["root"]["children"][0]
    assert (node["name"], node["file"], node["line"]) == ("main", "m.py", 1)
    assert "line" not in result.to_json()["root"]


def test_by_function_nodes_carry_no_line(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    result = queries.flamegraph("", None, None, now=now)
    assert result.root.children[0].line is None and "line" not in result.to_json()["root"]["children"][0]
    with pytest.raises(QueryError, match="invalid by 'file': expected one of function, line"):
        queries.flamegraph("", None, None, now=now, by="file")


def test_line_nodes_add_up_to_the_function_nodes(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    per_line = queries.flamegraph('{host=~"gpu-.*"}', "now-3d", None, now=now, by="line")
    per_function = queries.flamegraph('{host=~"gpu-.*"}', "now-3d", None, now=now)
    train_lines = [n for n in per_line.root.children[0].children if n.name == "train"]
    [train] = [n for n in per_function.root.children[0].children if n.name == "train"]
    assert sum(n.total_samples for n in train_lines) == train.total_samples > 1000
    assert per_line.source == "samples_1h"


def test_lines_match_the_line_flame_graph_and_the_issue(seeded: tuple[QueryService, float]) -> None:
    queries, now = seeded
    lines = queries.lines("", None, None, now=now, rate=100.0).to_json()
    by_key = {(line["function"], line["file"], line["line"]): line for line in lines["lines"]}
    # top lines by self cost; CPU seconds = self samples / rate
    assert [line["self"] for line in lines["lines"]] == sorted((line["self"] for line in lines["lines"]), reverse=True)
    assert by_key["matmul", "ops.py", 3]["self"] == 16 and by_key["matmul", "ops.py", 3]["cpu_seconds"] == 0.16
    # the same (function, file, line) identifies a node of the by=line flame graph
    leaf = queries.flamegraph("", None, None, now=now, by="line").root.children[0].children[1].children[0]
    assert (leaf.name, leaf.file, leaf.line, leaf.self_samples) == ("forward", "model.py", 10, 7)
    assert by_key["forward", "model.py", 10]["self"] == 7
    # kind and gpu_state written in the selector work here too
    wall = queries.lines('{kind="wall"}', None, None, now=now).to_json()
    assert wall["total_samples"] == 7 and wall["lines"][0]["function"] == "sleep"


def test_lines_without_gpu_data_skip_the_classification_and_agree_with_it(seeded: tuple[QueryService, float]) -> None:
    """No GPU rows in range: the fast path (no classification, rollup tiers) gives what the classified query gives."""
    from flamehouse.collector.filters import FilterBuilder
    from flamehouse.collector.lines import lines_counts_ctes, lines_sql
    from flamehouse.collector.rollup import query_params

    queries, now = seeded
    fast = queries.lines("", None, None, now=now, rate=100.0)
    store = queries.store
    where = FilterBuilder(store).profile("", None, None, now, kind=None, gpu_state=None, gpu_idle_below=10.0)
    plan = queries.plan(where)
    answers = {}
    for has_gpu in (True, False):
        counts, read, split = lines_counts_ctes(where, plan, store.db, has_gpu=has_gpu)
        params = {**query_params(where, read), "limit": 100}
        answers[has_gpu, read.source] = store.query(lines_sql(store.db, counts, split=split), params)
    (slow, quick), sources = list(answers.values()), [source for _, source in answers]
    assert slow == quick and sources == ["samples", "samples_1m"] and fast.source == "samples_1m"
    assert [line["self"] for line in fast.to_json()["lines"]] == [int(r[3]) for r in quick]
    # without GPU data nothing is busy or idle
    assert queries.lines("", None, None, now=now, gpu_state="idle").to_json()["lines"] == []

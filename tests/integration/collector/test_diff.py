"""Diff of a workload before and after a known change: one function made twice as expensive.

Two ways: seeded rows drawn at random from known costs (exact expectations,
sampling noise included), and a real script profiled twice with ``flamehouse
run`` (py-spy) into an in-process server. In both, the slowed function's
share grows by the expected amount and every other function's share only
follows the normalisation (each side's shares are of its own total), within noise.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from flamehouse import cli, serve
from flamehouse.collector import QueryError
from flamehouse.collector.diff import DiffNode, DiffResult
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ids
from flamehouse.ui.app import create_app

pytestmark = pytest.mark.integration

ROOT = [("main", "job.py", 1), ("step", "job.py", 5)]
LEAVES = {"load": ("data.py", 10), "forward": ("model.py", 20), "backward": ("model.py", 40), "log": ("job.py", 9)}
BEFORE = {"load": 2.0, "forward": 3.0, "backward": 4.0, "log": 1.0}
AFTER = {**BEFORE, "forward": 6.0}  # forward made twice as expensive
NOW = int(time.time()) // 60 * 60 - 600
BASE = (NOW - 2 * 3600, NOW - 3600)
COMPARISON = (NOW - 3600, NOW)
PER_SECOND = 20
TOLERANCE = 0.01  # 72,000 samples a side: a share's standard deviation is under 0.002


def _stack(leaf: str) -> list[tuple[str, str, int]]:
    file, line = LEAVES[leaf]
    return [*ROOT, (leaf, file, line)]


def seed_workload(store: Store, seed: int = 7) -> None:
    """Each second of each side: ``PER_SECOND`` samples drawn from that side's costs."""
    frames = {ids.frame_id(*f): f for leaf in LEAVES for f in _stack(leaf)}
    today = date.today()
    store.insert(
        "frames",
        ["frame_id", "function_id", "function", "file", "line", "last_seen"],
        [list(frames), [ids.function_id(f[0], f[1]) for f in frames.values()], [f[0] for f in frames.values()],
         [f[1] for f in frames.values()], [f[2] for f in frames.values()], [today] * len(frames)],
    )  # fmt: skip
    stack_of = {leaf: ids.stack_id([ids.frame_id(*f) for f in _stack(leaf)]) for leaf in LEAVES}
    store.insert(
        "stacks",
        ["stack_id", "frame_ids", "function_ids", "last_seen"],
        [list(stack_of.values()), [[ids.frame_id(*f) for f in _stack(leaf)] for leaf in LEAVES],
         [[ids.function_id(f[0], f[1]) for f in _stack(leaf)] for leaf in LEAVES], [today] * len(LEAVES)],
    )  # fmt: skip
    rng = random.Random(seed)
    columns: list[list[Any]] = [[] for _ in range(6)]
    for (start, end), costs in ((BASE, BEFORE), (COMPARISON, AFTER)):
        for second in range(start, end):
            drawn = rng.choices(list(costs), weights=list(costs.values()), k=PER_SECOND)
            for leaf in set(drawn):
                row = [datetime.fromtimestamp(second, tz=UTC), "trainer", 1, "cpu", stack_of[leaf], drawn.count(leaf)]
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
    store.insert("samples", ["ts", "service", "pid", "kind", "stack_id", "count"], columns)


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryService]:
    store = Store(StoreConfig(dsn=embedded_dsn(tmp_path_factory.mktemp("diff"))))
    try:
        migrate(store)
        seed_workload(store)
        yield QueryService(store)
    finally:
        store.close()


def _diff(queries: QueryService, **kwargs: Any) -> DiffResult:
    span = (str(BASE[0]), str(BASE[1])), (str(COMPARISON[0]), str(COMPARISON[1]))
    return queries.diff('{service="trainer"}', span[0], '{service="trainer"}', span[1], **kwargs)


def assert_only_the_slowed_function_moved(
    shares: dict[str, tuple[float, float]], slowed: str, growth: float, tolerance: float
) -> None:
    """``shares``: function → (base share, comparison share) of the leaves.

    The slowed function's share grows by ``growth`` (within ``tolerance``); every other
    one scales by the same factor, ``(1 - its comparison share) / (1 - its base share)``,
    as normalisation alone implies.
    """
    base, comparison = shares[slowed]
    assert abs(comparison - base - growth) < tolerance, shares
    factor = (1 - comparison) / (1 - base)
    for function, (b, c) in shares.items():
        if function != slowed:
            assert abs(c - b * factor) < tolerance, (function, b, c, b * factor)


def test_slowed_function_share_grows_and_nothing_else_moves(queries: QueryService) -> None:
    result = _diff(queries)
    total_before = sum(BEFORE.values())
    total_after = sum(AFTER.values())
    assert result.base_total == result.comparison_total == 3600 * PER_SECOND
    first = result.changes[0]
    assert (first.function, first.file) == ("forward", "model.py")
    assert abs(first.base_share - 3 / total_before) < TOLERANCE
    assert abs(first.comparison_share - 6 / total_after) < TOLERANCE
    assert abs(first.delta - (6 / total_after - 3 / total_before)) < TOLERANCE
    shares = {c.function: (c.base_share, c.comparison_share) for c in result.changes}
    assert set(shares) == set(LEAVES)
    assert_only_the_slowed_function_moved(shares, "forward", 6 / total_after - 3 / total_before, TOLERANCE)
    deltas = [abs(c.delta) for c in result.changes]
    assert deltas == sorted(deltas, reverse=True)


def _node(root: DiffNode, *path: str) -> DiffNode:
    node = root
    for name in path:
        node = next(c for c in node.children if c.name == name)
    return node


def test_merged_tree_carries_both_sides(queries: QueryService) -> None:
    result = _diff(queries)
    root = result.root
    assert (root.name, root.base_total, root.comparison_total) == ("all", result.base_total, result.comparison_total)
    step = _node(root, "main", "step")
    assert step.base_total == result.base_total and step.comparison_total == result.comparison_total
    assert sum(c.base_total for c in step.children) == step.base_total
    forward = _node(root, "main", "step", "forward")
    assert forward.base_self == forward.base_total and forward.comparison_self == forward.comparison_total
    assert forward.comparison_total / result.comparison_total > forward.base_total / result.base_total
    assert not result.truncated and result.sources == ("samples_1m", "samples_1m")


def test_one_sided_functions_and_errors(queries: QueryService) -> None:
    result = queries.diff('{service="trainer"}', (str(BASE[0]), str(BASE[1])), '{service="nobody"}', (None, None))
    assert result.comparison_total == 0 and result.root.comparison_total == 0
    assert all(c.comparison_share == 0 and c.delta == -c.base_share for c in result.changes)
    with pytest.raises(QueryError, match=r"^comparison: invalid time 'yesterday'"):
        queries.diff("", (None, None), "", ("yesterday", None))
    with pytest.raises(QueryError, match=r"^base: kind is 'cpu' as a parameter but 'wall' in the selector"):
        queries.diff('{kind="wall"}', (None, None), "", (None, None), kind="cpu")


# --- over HTTP and the CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(queries: QueryService) -> Iterator[str]:
    config = uvicorn.Config(create_app(queries), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-diff", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_cli_prints_the_largest_changes(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([
        "query", "diff", "--server", server_url, "--base", '{service="trainer"}',
        "--base-from", str(BASE[0]), "--base-to", str(BASE[1]),
        "--comparison-from", str(COMPARISON[0]), "--comparison-to", str(COMPARISON[1]), "--limit", "2",
    ])  # fmt: skip
    out = [line for line in capsys.readouterr().out.splitlines() if line]
    assert code == 0
    assert out[0] == "base: 72000 samples, comparison: 72000 samples (self share of each side's total)"
    assert out[1].split() == ["BASE%", "COMP%", "DELTA", "BASE", "COMP", "FUNCTION", "FILE"]
    assert out[2].split()[-2:] == ["forward", "model.py"] and out[2].split()[2].startswith("+")
    assert len(out) == 4


def test_cli_diff_bad_selector_is_usage_error(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["query", "diff", "--server", server_url, "--base", '{service="x"']) == 2
    assert "expected ',' or '}'" in capsys.readouterr().err


# --- a real workload, profiled with py-spy -----------------------------------------------------------

WORKLOAD = """
import sys, time

# each function spins in its own loop, so its cost is its own self time
def parse():
    total = 0
    for i in range(20000):
        total += i * i
    return total

def transform():
    total = 0
    for i in range(20000 * FACTOR):
        total += i * i
    return total

def save():
    total = 0
    for i in range(20000):
        total += i * i
    return total

FACTOR = int(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    parse()
    transform()
    save()
"""


def test_real_workload_before_and_after(tmp_path: Path, queries: QueryService) -> None:
    script = tmp_path / "etl.py"
    script.write_text(WORKLOAD)
    config = StoreConfig(dsn=queries.store.config.dsn, database="live")  # chDB: one data path per process
    services = serve.start(config, grpc_listen="127.0.0.1:0", http_listen=None)
    try:
        ranges = []
        for factor in ("1", "2"):
            started = int(time.time())
            run = subprocess.run(
                [sys.executable, "-m", "flamehouse.cli", "run", "--collector", f"127.0.0.1:{services.grpc_port}",
                 "--service", "etl", "--window", "1", "--rate", "200", "--", sys.executable, str(script), "5", factor],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            ranges.append((str(started), str(int(time.time()) + 1)))
            time.sleep(1.1)  # the next run starts in a later second
        live = QueryService(services.store)
        result = live.diff('{service="etl"}', ranges[0], '{service="etl"}', ranges[1])
    finally:
        services.stop(grace=2)
    assert min(result.base_total, result.comparison_total) > 400, result.to_json()
    mine = ("parse", "transform", "save")
    shares = {c.function: (c.base_share, c.comparison_share) for c in result.changes if c.function in mine}
    assert result.changes[0].function == "transform", [(c.function, round(c.delta, 3)) for c in result.changes[:5]]
    # 1:1:1 → 1:2:1; ~1000 samples a side: 4 standard deviations of a share are ~0.05, plus the loop's own cost
    assert_only_the_slowed_function_moved(shares, "transform", 1 / 2 - 1 / 3, 0.08)

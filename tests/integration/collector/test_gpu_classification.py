"""The per-second GPU classification, checked three ways on seeded random data in a real chDB.

The plan of :mod:`flamehouse.collector.gpu_state` (state per process and second on the
GPU side, looked up by each sample row through a numeric host key) must give what
the per-row plan it replaced gave (``_REFERENCE``: every sample row joined to its
process's GPU set and its host's devices of that second), and what the rules give
when applied in Python (:func:`_expected_states`), through every path that
classifies: ``top``/``flamegraph``/``lines`` with and without ``gpu_state``, raw
seconds and rollup plans (labels and stack ids read from ``samples_1m``), a
selector that narrows the GPU tables and one that does not, materialized CTEs or not.

The data (15 minutes, three hosts) has what can go wrong: the same pid on two hosts
with different GPU sets, NVML rows that override a label, NVML rows only outside the
range, ``cuda_visible_devices`` as indexes (with spaces), as UUIDs (one of another
host's GPU), with junk and out-of-range entries, empty; seconds without device rows,
NULL and NaN utilisation, a device reported twice in one second, a host without GPUs,
samples before and after the seconds with GPU data, a range with no GPU data at all.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector.filters import FilterBuilder
from flamehouse.collector.gpu_state import STATE_CODES, gpu_set_ctes, in_state, procs_cte, state_ctes
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ids

pytestmark = pytest.mark.integration

SPAN = 900
#: Seconds of samples before and after the GPU data: their state is ``none`` (outside every GPU second).
BEFORE, AFTER = 90, 30
#: GPUs per host: (index, uuid).
GPUS = {"node-a": [(i, f"GPU-a{i}") for i in range(4)], "node-b": [(i, f"GPU-b{i}") for i in range(2)], "cpu-c": []}
#: (host, pid) -> cuda_visible_devices label (None: no label); NVML rows in range for the first two.
PROCS: dict[tuple[str, int], str | None] = {
    ("node-a", 100): "0,1",  # NVML says GPU 1: NVML wins
    ("node-b", 100): "1",  # same pid, other host: GPU 1 of node-b
    ("node-a", 101): " 2 , 3 ",
    ("node-a", 102): "GPU-a3,bogus,7,99999",  # GPU 3 by UUID, 7 is no device here, 99999 out of range
    ("node-a", 103): None,  # every GPU of node-a
    ("node-b", 104): "",  # every GPU of node-b
    ("node-b", 105): "GPU-a0",  # another host's UUID: ignored, every GPU of node-b
    ("node-a", 107): "3",  # NVML rows only an hour before the range: the label counts
    ("cpu-c", 106): "0",  # no GPU on the host: none
}
NVML = {("node-a", 100): [1], ("node-b", 100): [1]}
STACKS: list[list[tuple[str, str, int]]] = [
    [("main", "job.py", 1), ("step", "job.py", 10 + i), (f"leaf{i}", "ops.py", 100 + i)] for i in range(6)
]

_REFERENCE = """
dev_sec AS (
    SELECT host, ts, groupArray(gpu_index) AS gi, groupArray(ifNull(toFloat64(sm_util), nan)) AS su
    FROM {db}.gpu_devices
    WHERE ts >= toDateTime({{t_from:UInt32}}) AND ts < toDateTime({{t_to:UInt32}}) AND host IN (SELECT host FROM procs)
    GROUP BY host, ts
),
classified AS (
    SELECT s.ts AS ts, s.host AS host, s.pid AS pid, s.stack_id AS stack_id, s.cnt AS cnt,
        arrayFilter((u, i) -> has(g.gpus, i) AND NOT isNaN(u), d.su, d.gi) AS utils,
        if(empty(utils), NULL, arrayAvg(utils)) AS util,
        multiIf(util IS NULL, 'none', util < {{gpu_idle_below:Float64}}, 'idle', 'busy') AS gpu_state
    FROM (SELECT ts, host, pid, stack_id, count AS cnt FROM {db}.samples WHERE {where}) AS s
    LEFT JOIN gpu_sets AS g ON g.host = s.host AND g.pid = s.pid
    LEFT JOIN dev_sec AS d ON d.host = s.host AND d.ts = s.ts
)"""
"""The per-row classification before the per-second plan (flamehouse up to ab6f43e), after ``procs`` and ``gpu_sets``."""


def _ts(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _generate(seed: int, t0: int) -> dict[str, list[tuple[Any, ...]]]:
    """Rows per table: samples ``(t, host, pid, stack, count)``, devices, processes."""
    rng = random.Random(seed)
    devices: list[tuple[Any, ...]] = []
    for host, gpus in GPUS.items():
        for t in range(t0, t0 + SPAN):
            if not gpus or rng.random() < 0.05:  # a second without device rows
                continue
            phase = rng.random()
            for index, uuid in gpus:
                draw = rng.random()
                util: float | None = rng.uniform(0, 100) if phase < 0.5 else rng.choice([0.0, 5.0, 9.5, 10.0, 60.0])
                if draw < 0.04:
                    util = None
                elif draw < 0.06:
                    util = math.nan
                devices.append((_ts(t), host, index, uuid, util))
                if draw > 0.99:  # reported twice in one second
                    devices.append((_ts(t), host, index, uuid, rng.uniform(0, 100)))
    processes = [(_ts(t), host, pid, idx) for (host, pid), gpus in NVML.items() for idx in gpus
                 for t in range(t0, t0 + SPAN, 7)]  # fmt: skip
    processes.append((_ts(t0 - 3600), "node-a", 107, 0))  # outside every range used
    samples = [
        (t, host, pid, rng.randrange(len(STACKS)), rng.randint(1, 5))
        for (host, pid) in PROCS
        for t in range(t0 - BEFORE, t0 + SPAN + AFTER)
        for _ in range(rng.choice([0, 1, 1, 2, 3]))
    ]
    return {"samples": samples, "devices": devices, "processes": processes}


def _insert(store: Store, data: dict[str, list[tuple[Any, ...]]]) -> None:
    frames = {f for stack in STACKS for f in stack}
    today = date.today()
    store.insert(
        "frames",
        ["frame_id", "function_id", "function", "file", "line", "last_seen"],
        [[ids.frame_id(*f) for f in frames], [ids.function_id(f[0], f[1]) for f in frames], [f[0] for f in frames],
         [f[1] for f in frames], [f[2] for f in frames], [today] * len(frames)],
    )  # fmt: skip
    frame_ids = [[ids.frame_id(*f) for f in stack] for stack in STACKS]
    store.insert(
        "stacks",
        ["stack_id", "frame_ids", "function_ids", "last_seen"],
        [[ids.stack_id(f) for f in frame_ids], frame_ids, [[ids.function_id(f[0], f[1]) for f in s] for s in STACKS],
         [today] * len(STACKS)],
    )  # fmt: skip
    names = ["ts", "service", "job", "host", "pid", "rank", "thread", "tid", "kind", "labels", "stack_id", "count"]
    columns: list[list[Any]] = [[] for _ in names]
    for t, host, pid, stack, count in data["samples"]:
        label = PROCS[host, pid]
        labels = {"team": "ml"} if label is None else {"team": "ml", "cuda_visible_devices": label}
        row = [
            _ts(t),
            "svc",
            "j",
            host,
            pid,
            "0",
            "MainThread",
            pid,
            "cpu",
            labels,
            ids.stack_id(frame_ids[stack]),
            count,
        ]
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    store.insert("samples", names, columns)
    store.insert("gpu_devices", ["ts", "host", "gpu_index", "gpu_uuid", "sm_util"], _columns(data["devices"]))
    store.insert("gpu_processes", ["ts", "host", "pid", "gpu_index"], _columns(data["processes"]))


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _expected_states(
    data: dict[str, list[tuple[Any, ...]]], start: int, end: int, idle_below: float
) -> dict[tuple[int, str], int]:
    """Samples per ``(stack, state)`` in ``[start, end)``, by the rules of :mod:`.gpu_state` applied in Python."""
    in_range = [r for r in data["devices"] if start <= r[0].timestamp() < end]
    host_gpus: dict[str, dict[int, str]] = defaultdict(dict)
    utils: dict[tuple[str, int], list[tuple[int, float | None]]] = defaultdict(list)
    for ts, host, index, uuid, util in in_range:
        host_gpus[host].setdefault(index, uuid)
        utils[host, int(ts.timestamp())].append((index, util))
    nvml: dict[tuple[str, int], set[int]] = defaultdict(set)
    for ts, host, pid, index in data["processes"]:
        if start <= ts.timestamp() < end:
            nvml[host, pid].add(index)

    def gpu_set(host: str, pid: int) -> set[int]:
        if nvml[host, pid]:
            return nvml[host, pid]
        named: set[int] = set()
        for token in (t.strip() for t in (PROCS[host, pid] or "").split(",")):
            if token.isdigit() and len(token) <= 5:
                named.add(int(token))
            elif token in host_gpus[host].values():
                named.add(next(i for i, u in host_gpus[host].items() if u == token))
        named = {i for i in named if 0 <= i <= 65535}
        return named or set(host_gpus[host])

    expected: dict[tuple[int, str], int] = defaultdict(int)
    for t, host, pid, stack, count in data["samples"]:
        if not start <= t < end:
            continue
        gpus = gpu_set(host, pid)
        values = [u for i, u in utils[host, t] if i in gpus and u is not None and not math.isnan(u)]
        state = "none" if not values else "idle" if sum(values) / len(values) < idle_below else "busy"
        expected[stack, state] += count
    return dict(expected)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, int, dict[str, list[tuple[Any, ...]]]]]:
    path: Path = tmp_path_factory.mktemp("gpu_classification")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        t0 = (int(time.time()) - 3600) // 60 * 60
        data = _generate(7, t0)
        _insert(store, data)
        yield store, t0, data
    finally:
        store.close()


#: The GPU span; unaligned with a rollup part; raw only; samples on both sides of the GPU data (rollup part).
RANGES = [(0, SPAN), (17, 17 + 720), (200, 260), (-BEFORE, SPAN + AFTER)]


@pytest.mark.parametrize("offsets", RANGES)
@pytest.mark.parametrize("idle_below", [10.0, 50.0])
def test_new_plan_matches_the_per_row_reference_and_the_rules(
    seeded: tuple[Store, int, dict[str, list[tuple[Any, ...]]]], offsets: tuple[int, int], idle_below: float
) -> None:
    store, t0, data = seeded
    start, end = t0 + offsets[0], t0 + offsets[1]
    where = FilterBuilder(store).profile("", str(start), str(end), None, gpu_idle_below=idle_below)
    db, params = store.db, {**where.params, **where.gpu.params}
    reference = store.query(
        f"WITH {procs_cte(db, where.sql)}, {gpu_set_ctes(db)}, {_REFERENCE.format(db=db, where=where.sql)} "
        "SELECT stack_id, gpu_state, sum(cnt) FROM classified GROUP BY stack_id, gpu_state",
        params,
    )
    codes = {code: name for name, code in STATE_CODES.items()}
    for narrow in (True, False):
        state = f"multiIf({in_state('2')}, {codes[2]!r}, {in_state('1')}, {codes[1]!r}, 'none')"
        new = store.query(
            f"WITH {state_ctes(db, where.sql, narrow=narrow)} SELECT stack_id, {state} AS s, sum(count) "
            f"FROM {db}.samples WHERE {where.sql} GROUP BY stack_id, s",
            params,
        )
        assert sorted(new) == sorted(reference)
    stack_ids = [ids.stack_id([ids.frame_id(*f) for f in stack]) for stack in STACKS]
    expected = _expected_states(data, start, end, idle_below)
    assert {(stack_ids.index(s), state): n for s, state, n in reference} == expected
    assert {state for _, state in expected} == {"busy", "idle", "none"}


def _by_state(queries: QueryService, selector: str, span: tuple[str, str], idle_below: float) -> dict[str, Any]:
    """What every classifying path answers, per state."""
    answers: dict[str, Any] = {}
    for state in ("any", "busy", "idle", "none"):
        kw: dict[str, Any] = {"gpu_state": state, "gpu_idle_below": idle_below}
        top = queries.top(selector, *span, **kw)
        flame = queries.flamegraph(selector, *span, by="line", **kw)
        lines = queries.lines(selector, *span, rate=1.0, **kw).to_json()
        answers[state] = {
            "top": (top.total_samples, {(f.function, f.self_samples, f.total_samples) for f in top.functions}),
            "flame": flame.to_json(),
            "lines": (lines["total_samples"], sorted(map(str, lines["lines"]))),
        }
    return answers


@pytest.mark.parametrize("offsets", RANGES)
def test_every_query_path_agrees_with_the_rules(
    seeded: tuple[Store, int, dict[str, list[tuple[Any, ...]]]], offsets: tuple[int, int]
) -> None:
    store, t0, data = seeded
    start, end = t0 + offsets[0], t0 + offsets[1]
    span = (str(start), str(end))
    expected = _expected_states(data, start, end, 50.0)
    leaf = {i: f"leaf{i}" for i in range(len(STACKS))}
    reference = None
    for materialize in (True, False):
        queries = QueryService(store, materialize=materialize)
        for selector in ("", '{host=~"node-.|cpu-c"}'):  # narrows the GPU tables, selects the same
            answers = _by_state(queries, selector, span, 50.0)
            reference = reference or answers
            assert answers == reference, (materialize, selector)
    assert reference is not None
    for state in ("busy", "idle", "none"):
        want = {leaf[s]: n for (s, st), n in expected.items() if st == state}
        total, functions = reference[state]["top"]
        assert total == sum(want.values()) > 0
        assert {name: self_n for name, self_n, _ in functions if name.startswith("leaf")} == want
    lines = QueryService(store).lines("", *span, rate=1.0, gpu_idle_below=50.0).to_json()["lines"]
    split = {line["function"]: (line["gpu_busy_seconds"], line["gpu_idle_seconds"]) for line in lines}
    for i in range(len(STACKS)):
        assert split[leaf[i]] == (expected.get((i, "busy"), 0), expected.get((i, "idle"), 0))


def test_a_range_without_gpu_data_is_all_none(seeded: tuple[Store, int, dict[str, list[tuple[Any, ...]]]]) -> None:
    store, t0, data = seeded
    span = (str(t0 - BEFORE), str(t0 - 1))
    everything = sum(count for t, *_, count in data["samples"] if t0 - BEFORE <= t < t0 - 1)
    queries = QueryService(store)
    assert queries.top("", *span, gpu_state="none").total_samples == everything > 0
    assert queries.top("", *span, gpu_state="any").total_samples == everything
    for state in ("busy", "idle"):
        assert queries.top("", *span, gpu_state=state).total_samples == 0
        assert queries.lines("", *span, gpu_state=state).total_samples == 0

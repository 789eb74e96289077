"""GPU-aware read queries against a real embedded ClickHouse (chDB) holding known rows.

``seed_gpu_scenario`` writes samples, stacks, frames and GPU rows straight into
the tables. Host ``node-a`` has GPU 0 and GPU 1 in anti-phase over 20 seconds
(even seconds: GPU 0 at 0 %, GPU 1 at 90 %; odd seconds the reverse), so a
process classified by the wrong GPU, or by both, lands in another state:

* pid 101 (trainer, rank 0): NVML saw it on GPU 0, its ``cuda_visible_devices``
  says 1: NVML wins. ``load_batch`` in even seconds (GPU 0 idle), ``train_step``
  (lines 20 and 21) in odd ones (busy); ``checkpoint`` at +25 s, when no device
  row exists (none).
* pid 102 (loader): no NVML rows, ``cuda_visible_devices=GPU-a1`` (a UUID) →
  GPU 1: ``prefetch`` in even seconds (busy), ``decode`` in odd ones (idle).
* pid 103 (trainer, rank 1): ``cuda_visible_devices=1`` → GPU 1: ``augment`` in
  odd seconds (idle).
* pid 104 (eval): no NVML rows in range (one an hour earlier, on GPU 0, must
  not count), no label → both GPUs, mean 45 %: busy at the default threshold,
  idle at 50; ``log_metrics`` at +30 s when both GPUs report NULL (none).
* pid 105 (etl) on ``cpu-b``, a host without GPUs: ``parse`` (none).

Timestamps sit half an hour before the real clock (the tables have a TTL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from flamehouse.collector import QueryError
from flamehouse.collector.gpu_query import choose_step
from flamehouse.collector.gpu_state import counts_ctes, gpu_filter
from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ids

pytestmark = pytest.mark.integration

Frame = tuple[str, str, int]

MAIN: Frame = ("main", "job.py", 1)
LOOP: Frame = ("train_loop", "job.py", 5)
LOAD: Frame = ("load_batch", "data.py", 10)
TRAIN_20: Frame = ("train_step", "model.py", 20)
TRAIN_21: Frame = ("train_step", "model.py", 21)
PREFETCH: Frame = ("prefetch", "data.py", 30)
DECODE: Frame = ("decode", "data.py", 40)
AUGMENT: Frame = ("augment", "data.py", 50)
EVALUATE: Frame = ("evaluate", "eval.py", 7)
CHECKPOINT: Frame = ("checkpoint", "job.py", 9)
LOG: Frame = ("log_metrics", "job.py", 12)
PARSE: Frame = ("parse", "etl.py", 3)

STACKS: dict[str, list[Frame]] = {
    "load": [MAIN, LOOP, LOAD],
    "train20": [MAIN, LOOP, TRAIN_20],
    "train21": [MAIN, LOOP, TRAIN_21],
    "prefetch": [MAIN, PREFETCH],
    "decode": [MAIN, DECODE],
    "augment": [MAIN, AUGMENT],
    "evaluate": [MAIN, EVALUATE],
    "checkpoint": [MAIN, LOOP, CHECKPOINT],
    "log": [MAIN, LOG],
    "parse": [MAIN, PARSE],
}
#: (service, rank, host, labels) per pid
PROCS: dict[int, tuple[str, str, str, dict[str, str]]] = {
    101: ("trainer", "0", "node-a", {"cuda_visible_devices": "1"}),
    102: ("loader", "", "node-a", {"cuda_visible_devices": "GPU-a1"}),
    103: ("trainer", "1", "node-a", {"cuda_visible_devices": " 1 "}),
    104: ("eval", "", "node-a", {}),
    105: ("etl", "", "cpu-b", {}),
}
SECONDS = 20
#: Expected samples per GPU state at the default threshold (10 %).
IDLE = 70 + 20 + 10  # load_batch, decode, augment
BUSY = 50 + 30 + 80  # train_step, prefetch, evaluate
NONE = 9 + 2 + 60  # checkpoint, log_metrics, parse
RATE = 99.0


def _sample_rows(t0: int) -> list[tuple[int, int, str, int]]:
    """``(second, pid, stack, count)`` of the scenario."""
    rows: list[tuple[int, int, str, int]] = []
    for i in range(SECONDS):
        t = t0 + i
        if i % 2 == 0:
            rows += [(t, 101, "load", 7), (t, 102, "prefetch", 3)]
        else:
            rows += [(t, 101, "train20", 3), (t, 101, "train21", 2), (t, 102, "decode", 2), (t, 103, "augment", 1)]
        rows.append((t, 104, "evaluate", 4))
        if i < 10:
            rows.append((t, 105, "parse", 6))
    rows += [(t0 + 25, 101, "checkpoint", 9), (t0 + 30, 104, "log", 2)]
    return rows


def _insert_profiles(store: Store, t0: int) -> None:
    frames = {ids.frame_id(*f): f for fs in STACKS.values() for f in fs}
    today = date.today()
    store.insert(
        "frames",
        ["frame_id", "function_id", "function", "file", "line", "last_seen"],
        [list(frames), [ids.function_id(f[0], f[1]) for f in frames.values()], [f[0] for f in frames.values()],
         [f[1] for f in frames.values()], [f[2] for f in frames.values()], [today] * len(frames)],
    )  # fmt: skip
    stack_ids = {}
    columns: list[list[Any]] = [[], [], [], []]
    for name, stack in STACKS.items():
        frame_ids = [ids.frame_id(*f) for f in stack]
        stack_ids[name] = ids.stack_id(frame_ids)
        for column, value in zip(
            columns, [stack_ids[name], frame_ids, [ids.function_id(f[0], f[1]) for f in stack], today], strict=True
        ):
            column.append(value)
    store.insert("stacks", ["stack_id", "frame_ids", "function_ids", "last_seen"], columns)
    names = ["ts", "service", "job", "host", "pid", "rank", "thread", "tid", "kind", "labels", "stack_id", "count"]
    data: list[list[Any]] = [[] for _ in names]
    for t, pid, stack_name, count in _sample_rows(t0):
        service, rank, host, labels = PROCS[pid]
        row = [_ts(t), service, "j1", host, pid, rank, "MainThread", pid, "cpu", labels, stack_ids[stack_name], count]
        for column, value in zip(data, row, strict=True):
            column.append(value)
    store.insert("samples", names, data)


def _insert_gpus(store: Store, t0: int) -> None:
    devices: list[tuple[Any, ...]] = []
    processes: list[tuple[Any, ...]] = []
    for i in range(SECONDS):
        util = (0.0, 90.0) if i % 2 == 0 else (90.0, 0.0)
        for index in (0, 1):
            devices.append((_ts(t0 + i), "node-a", index, f"GPU-a{index}", "H200", util[index], 20.0 + index,
                            1000 + i, 8000, 100.0 + i, 50.0))  # fmt: skip
        processes.append((_ts(t0 + i), "node-a", 101, 0, "GPU-a0", util[0], 2000))
    for index in (0, 1):  # +30 s: the devices report, but without utilisation
        devices.append((_ts(t0 + 30), "node-a", index, f"GPU-a{index}", "H200", None, None, 500, 8000, None, 50.0))
    processes.append((_ts(t0 - 3600), "node-a", 104, 0, "GPU-a0", 50.0, 1))  # outside every range used
    device_columns = ["ts", "host", "gpu_index", "gpu_uuid", "gpu_name", "sm_util", "mem_util", "mem_used"]
    device_columns += ["mem_total", "power_w", "temperature_c"]
    store.insert("gpu_devices", device_columns, _columns(devices))
    process_columns = ["ts", "host", "pid", "gpu_index", "gpu_uuid", "sm_util", "mem_used"]
    store.insert("gpu_processes", process_columns, _columns(processes))


def _ts(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def seed_gpu_scenario(store: Store) -> int:
    """Writes the scenario; returns its first second ``t0`` (a multiple of 60)."""
    t0 = (int(time.time()) - 1800) // 60 * 60
    _insert_profiles(store, t0)
    _insert_gpus(store, t0)
    return t0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryService, int]]:
    path: Path = tmp_path_factory.mktemp("gpu_query")
    store = Store(StoreConfig(dsn=embedded_dsn(path)))
    try:
        migrate(store)
        yield QueryService(store), seed_gpu_scenario(store)
    finally:
        store.close()


def _range(t0: int, seconds: int = 60) -> tuple[str, str]:
    return str(t0), str(t0 + seconds)


def _top(scenario: tuple[QueryService, int], selector: str = "", **kw: Any) -> dict[str, int]:
    queries, t0 = scenario
    result = queries.top(selector, *_range(t0), **kw)
    return {"total": result.total_samples, **{f.function: f.self_samples for f in result.functions if f.self_samples}}


def test_idle_profile_is_load_batch_and_busy_is_train_step(scenario: tuple[QueryService, int]) -> None:
    idle = _top(scenario, '{pid="101"}', gpu_state="idle")
    busy = _top(scenario, '{pid="101"}', gpu_state="busy")
    assert idle == {"total": 70, "load_batch": 70}
    assert busy == {"total": 50, "train_step": 50}
    assert _top(scenario, '{pid="101"}', gpu_state="none") == {"total": 9, "checkpoint": 9}


def test_states_partition_the_samples(scenario: tuple[QueryService, int]) -> None:
    totals = {state: _top(scenario, gpu_state=state)["total"] for state in ("any", "busy", "idle", "none")}
    assert totals == {"any": IDLE + BUSY + NONE, "busy": BUSY, "idle": IDLE, "none": NONE}
    assert _top(scenario, gpu_state="idle") == {"total": IDLE, "load_batch": 70, "decode": 20, "augment": 10}


@pytest.mark.parametrize(
    ("selector", "idle", "busy"),
    [
        ('{pid="101"}', {"load_batch": 70}, {"train_step": 50}),  # NVML (GPU 0) wins over its label (GPU 1)
        ('{pid="102"}', {"decode": 20}, {"prefetch": 30}),  # label names GPU 1 by UUID, not GPU 0
        ('{pid="103"}', {"augment": 10}, {}),  # label names GPU 1 by index
        ('{pid="104"}', {}, {"evaluate": 80}),  # no NVML row in range, no label: both GPUs, mean 45 %
    ],
)
def test_gpu_set_rules(
    scenario: tuple[QueryService, int], selector: str, idle: dict[str, int], busy: dict[str, int]
) -> None:
    assert _top(scenario, selector, gpu_state="idle") == {"total": sum(idle.values()), **idle}
    assert _top(scenario, selector, gpu_state="busy") == {"total": sum(busy.values()), **busy}


def test_none_without_gpu_rows_or_utilisation(scenario: tuple[QueryService, int]) -> None:
    assert _top(scenario, '{host="cpu-b"}', gpu_state="none") == {"total": 60, "parse": 60}
    assert _top(scenario, '{host="cpu-b"}', gpu_state="idle") == {"total": 0}
    assert _top(scenario, '{pid="104"}', gpu_state="none") == {"total": 2, "log_metrics": 2}  # NULL sm_util


def test_threshold_moves_the_split(scenario: tuple[QueryService, int]) -> None:
    assert _top(scenario, '{pid="104"}', gpu_state="idle", gpu_idle_below=50) == {"total": 80, "evaluate": 80}
    assert _top(scenario, '{pid="104"}', gpu_state="idle", gpu_idle_below=45) == {"total": 0}  # 45 is not < 45
    assert _top(scenario, gpu_state="idle", gpu_idle_below=0)["total"] == 0
    assert _top(scenario, gpu_state="busy", gpu_idle_below=100)["total"] == 0
    assert _top(scenario, gpu_state="idle", gpu_idle_below=100)["total"] == IDLE + BUSY


def test_flamegraph_by_gpu_state(scenario: tuple[QueryService, int]) -> None:
    queries, t0 = scenario
    idle = queries.flamegraph('{service="trainer"}', *_range(t0), gpu_state="idle")
    assert idle.total_samples == 80 and idle.root.total_samples == 80
    [main] = idle.root.children
    assert [(c.name, c.total_samples) for c in main.children] == [("train_loop", 70), ("augment", 10)]
    assert queries.flamegraph('{service="nobody"}', *_range(t0), gpu_state="busy").total_samples == 0


def test_any_reads_no_gpu_table() -> None:
    sql = counts_ctes("flamehouse", "1", gpu_filter("any"))
    assert "gpu_" not in sql and "classified" not in sql
    assert "gpu_devices" in counts_ctes("flamehouse", "1", gpu_filter("idle"))


def test_lines_cost_per_line(scenario: tuple[QueryService, int]) -> None:
    queries, t0 = scenario
    result = queries.lines("", *_range(t0), rate=RATE).to_json()
    assert result["total_samples"] == IDLE + BUSY + NONE and result["rate"] == RATE
    by_line = {(line["function"], line["line"]): line for line in result["lines"]}
    load = by_line[("load_batch", 10)]
    assert load == {
        "file": "data.py", "line": 10, "function": "load_batch", "self": 70, "total": 70,
        "cpu_seconds": 70 / RATE, "gpu_busy_seconds": 0.0, "gpu_idle_seconds": 70 / RATE,
    }  # fmt: skip
    assert (by_line[("train_step", 20)]["self"], by_line[("train_step", 21)]["self"]) == (30, 20)
    assert by_line[("train_step", 20)]["gpu_busy_seconds"] == 30 / RATE
    assert by_line[("train_step", 20)]["gpu_idle_seconds"] == 0.0
    assert by_line[("decode", 40)]["gpu_idle_seconds"] == 20 / RATE
    assert by_line[("parse", 3)]["gpu_idle_seconds"] == by_line[("parse", 3)]["gpu_busy_seconds"] == 0.0
    assert by_line[("train_loop", 5)] == {
        "file": "job.py", "line": 5, "function": "train_loop", "self": 0, "total": 70 + 50 + 9,
        "cpu_seconds": 0.0, "gpu_busy_seconds": 0.0, "gpu_idle_seconds": 0.0,
    }  # fmt: skip
    assert by_line[("main", 1)]["total"] == IDLE + BUSY + NONE
    selfs = [line["self"] for line in result["lines"]]
    assert selfs == sorted(selfs, reverse=True)
    assert [line["function"] for line in result["lines"][:3]] == ["evaluate", "load_batch", "parse"]


def test_lines_filtered_by_state_and_limited(scenario: tuple[QueryService, int]) -> None:
    queries, t0 = scenario
    idle = queries.lines("", *_range(t0), gpu_state="idle", limit=2, rate=50).to_json()
    assert idle["total_samples"] == IDLE
    assert [(line["function"], line["self"], line["gpu_idle_seconds"]) for line in idle["lines"]] == [
        ("load_batch", 70, 70 / 50),
        ("decode", 20, 20 / 50),
    ]
    eval_idle = queries.lines('{pid="104"}', *_range(t0), gpu_idle_below=50).to_json()
    assert eval_idle["lines"][0]["function"] == "evaluate"
    assert eval_idle["lines"][0]["gpu_idle_seconds"] == 80 / RATE


def test_timeline_samples_and_gpu_means(scenario: tuple[QueryService, int]) -> None:
    queries, t0 = scenario
    p101 = queries.timeline('{pid="101"}', str(t0), str(t0 + 40), step=10).to_json()
    assert p101 == {
        "step": 10,
        "time": [t0, t0 + 10, t0 + 20, t0 + 30],
        "samples": [60, 60, 9, 0],
        "gpu_util": [45.0, 45.0, None, None],  # GPU 0 only; +20..29 has no rows, +30 only NULLs
    }
    per_second = queries.timeline('{pid="101"}', str(t0), str(t0 + 4), step=1).to_json()
    assert per_second["gpu_util"] == [0.0, 90.0, 0.0, 90.0] and per_second["samples"] == [7, 5, 7, 5]
    both = queries.timeline('{pid="104"}', str(t0), str(t0 + 4), step=2).to_json()
    assert both["gpu_util"] == [45.0, 45.0] and both["samples"] == [8, 8]
    no_gpu = queries.timeline('{host="cpu-b"}', str(t0), str(t0 + 20), step=10).to_json()
    assert no_gpu["samples"] == [60, 0] and no_gpu["gpu_util"] == [None, None]
    assert queries.timeline("", str(t0), str(t0 + 40)).step == 1  # 40 points


def test_gpu_series_bucket_means(scenario: tuple[QueryService, int]) -> None:
    queries, t0 = scenario
    result = queries.gpu("", str(t0), str(t0 + 40), step=10).to_json()
    assert result["step"] == 10
    assert [(d["host"], d["index"], d["uuid"], d["name"]) for d in result["devices"]] == [
        ("node-a", 0, "GPU-a0", "H200"),
        ("node-a", 1, "GPU-a1", "H200"),
    ]
    assert result["devices"][0]["series"] == {
        "time": [t0, t0 + 10, t0 + 30],  # no row in +20..29
        "sm_util": [45.0, 45.0, None],
        "mem_util": [20.0, 20.0, None],
        "mem_used": [1004.5, 1014.5, 500.0],
        "mem_total": [8000.0, 8000.0, 8000.0],
        "power_w": [104.5, 114.5, None],
        "temperature_c": [50.0, 50.0, 50.0],
    }
    assert result["processes"] == [
        {
            "host": "node-a",
            "pid": 101,
            "index": 0,
            "series": {"time": [t0, t0 + 10], "sm_util": [45.0, 45.0], "mem_used": [2000.0, 2000.0]},
        }
    ]


@pytest.mark.parametrize(
    ("selector", "devices", "pids"),
    [
        ('{service="loader"}', [1], []),  # its label names GPU 1
        ('{service="trainer"}', [0, 1], [101]),  # pid 101 on GPU 0 (NVML), pid 103 on GPU 1 (label)
        ('{pid="101"}', [0], [101]),
        ('{service="etl"}', [], []),  # a host without GPUs
        ("{}", [0, 1], [101]),
    ],
)
def test_gpu_devices_follow_the_selected_processes(
    scenario: tuple[QueryService, int], selector: str, devices: list[int], pids: list[int]
) -> None:
    queries, t0 = scenario
    result = queries.gpu(selector, *_range(t0)).to_json()
    assert [d["index"] for d in result["devices"]] == devices
    assert [p["pid"] for p in result["processes"]] == pids


@pytest.mark.parametrize(
    ("span", "step"),
    [(40, 1), (600, 1), (601, 2), (3600, 10), (86400, 300), (30 * 86400, 7200), (400 * 86400, 86400)],
)
def test_default_step_keeps_at_most_600_points(span: int, step: int) -> None:
    assert choose_step(0, span, None) == step
    assert math.ceil(span / step) <= 600


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, t: q.top("", *t, gpu_state="wasted"), "invalid gpu_state 'wasted': expected one of any, busy"),
        (lambda q, t: q.flamegraph("", *t, gpu_state="IDLE"), "invalid gpu_state 'IDLE'"),
        (lambda q, t: q.lines("", *t, gpu_idle_below=101), "gpu_idle_below must be a percentage between 0 and 100"),
        (lambda q, t: q.top("", *t, gpu_idle_below=-1), "gpu_idle_below must be a percentage"),
        (lambda q, t: q.top("", *t, gpu_idle_below=math.nan), "gpu_idle_below must be a percentage"),
        (lambda q, t: q.lines("", *t, rate=0), "rate must be a sampling rate"),
        (lambda q, t: q.lines("", *t, rate=math.inf), "rate must be a sampling rate"),
        (lambda q, t: q.lines("", *t, limit=0), "limit must be between 1 and 10000"),
        (lambda q, t: q.lines("", *t, kind="gpu"), "invalid kind 'gpu'"),
        (lambda q, t: q.gpu("", *t, step=0), "step must be between 1 and"),
        (lambda q, t: q.timeline("", "now-1d", "now", step=1), "at most 11000: use step >= 8"),
        (lambda q, t: q.timeline('{host="x', *t), "expected closing"),
    ],
)
def test_bad_input_is_a_query_error(scenario: tuple[QueryService, int], call: Any, message: str) -> None:
    queries, t0 = scenario
    with pytest.raises(QueryError, match=message):
        call(queries, _range(t0))

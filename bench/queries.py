"""Read-query latency over many stored sample rows: top, flame graph, lines; growth with rows.

The store is a temporary embedded chDB migrated with the product's schema. Frames and
stacks (3,000 distinct stacks ~30 frames deep from :mod:`profiles`, ids from
:mod:`flamehouse.proto.ids`, so the queries' joins resolve) are written with
:meth:`Store.insert`. Sample rows are generated inside ClickHouse with ``INSERT ... SELECT
... FROM numbers()``: 64 processes on 8 hosts in 4 services, 4 threads each, ~40 rows per
process and second, stacks drawn with a heavy skew from the 3,000, counts 1-8. Rows are
added in steps (1M, 10M; ``--sizes 1,10,30`` for 30M; quick mode 100k) and after each step every query runs
over the whole time range with an empty selector (the worst case), interleaved
(top, flame, lines, top, ...); medians are reported. Then GPU rows are added over the
largest size's range (:func:`add_gpu_rows`) and lines (which now classifies every
second as GPU-busy, idle or none) and top with ``gpu_state=idle`` run again. Then, in a
fresh store, 3M rows spread over 30 days are queried over the whole month: where the
schema has rollups (``samples_1m``, ``samples_1h``, filled by materialized views on
insert), the queries read them; each row's note says which table answered.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from harness import Result, fmt, median, parse_args, report, scratch, spread
from profiles import stack_pool

from flamehouse.collector.query import QueryService
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.proto import ids

NAME = "queries"
ROLLUP = re.compile(r"^samples_\d+[smhd]$")  # rollup tables (samples_1m, samples_1h, ...) where the schema has them
PROCS, ROWS_PER_PROC_SECOND = 64, 40
PER_SECOND = PROCS * ROWS_PER_PROC_SECOND
TARGETS_MS = {"top": 500.0, "flamegraph": 1000.0, "lines": 500.0, "top gpu_state=idle": 500.0}
STACKS = 3000
CHUNK = 5_000_000
WORKING_SET = 300  # stacks one thread hits within 10 minutes
MONTH = 30 * 86_400


def seed_stacks(store: Store, n: int) -> list[int]:
    """Writes ``n`` stacks and their frames; returns the stack ids."""
    pool = stack_pool(n, seed=11)
    today = datetime.now(UTC).date()
    frames = {f for stack in pool for f in stack}
    fcols: list[list[object]] = [[], [], [], [], [], []]
    for f in frames:
        for col, value in zip(
            fcols,
            (
                ids.frame_id(f.function, f.file, f.line),
                ids.function_id(f.function, f.file),
                f.function,
                f.file,
                f.line,
                today,
            ),
            strict=True,
        ):
            col.append(value)
    store.insert("frames", ("frame_id", "function_id", "function", "file", "line", "last_seen"), fcols)
    stack_ids, frame_ids, function_ids = [], [], []
    for stack in pool:
        fids = [ids.frame_id(f.function, f.file, f.line) for f in stack]
        stack_ids.append(ids.stack_id(fids))
        frame_ids.append(fids)
        function_ids.append([ids.function_id(f.function, f.file) for f in stack])
    store.insert(
        "stacks",
        ("stack_id", "frame_ids", "function_ids", "last_seen"),
        [stack_ids, frame_ids, function_ids, [today] * n],
    )
    return stack_ids


def add_rows(store: Store, pool: list[int], t0: int, offset: int, n: int, *, per_second: float) -> None:
    """Appends rows ``[offset, offset + n)`` of the synthetic series: ``per_second`` rows a second from ``t0``.

    Row ``i`` belongs to process ``i % 64`` and thread ``i // 64 % 4``. Each thread works
    over its own 300 stacks of the pool, which it changes every 10 minutes (stack churn),
    and draws among them with a heavy skew (offset ``300 * u**2.5``, u uniform from a hash
    of ``i``), so a minute of one thread holds far fewer distinct stacks than rows.
    """
    literal = "[" + ",".join(map(str, pool)) + "]"
    for start in range(offset, offset + n, CHUNK):
        count = min(CHUNK, offset + n - start)
        store.command(f"""
INSERT INTO {store.db}.samples
    (ts, service, job, host, pid, rank, thread, tid, kind, labels, stack_id, count, batch_id)
WITH {literal} AS pool
SELECT
    toDateTime(t) AS ts,
    concat('svc-', toString(p % 4)), 'job-1', concat('host-', toString(intDiv(p, 8))),
    toUInt32(10000 + p), toString(p),
    ['MainThread', 'pin_memory', 'QueueFeederThread', 'grpc_poll'][1 + th], toUInt64((10000 + p) * 100 + th),
    'cpu', if(p % 4 = 1, map('local_rank', toString(p % 8), 'world_size', '64', 'cuda_visible_devices',
        toString(p % 8)), map('local_rank', toString(p % 8), 'world_size', '64')),
    pool[1 + (cityHash64(p, th, intDiv(t, 600)) + toUInt64(pow((cityHash64(number) % 1000003) / 1000003, 2.5)
        * {WORKING_SET})) % {len(pool)}],
    toUInt32(1 + cityHash64(number, 1) % 8),
    concat(toString(p), '-', toString(intDiv(t, 10)))
FROM (
    SELECT number, number % {PROCS} AS p, intDiv(number, {PROCS}) % 4 AS th,
           toUInt32({t0} + toUInt32(number / {per_second!r})) AS t
    FROM numbers({start}, {count})
)""")


def add_gpu_rows(store: Store, t0: int, seconds: int) -> int:
    """GPU rows for ``[t0, t0 + seconds)``: 8 GPUs on each of hosts 0-6 (host 7 has none); returns device rows.

    Each GPU is busy (SM 60-99 %) but idle (3 %) in a quarter of its 5-second blocks, and
    reports no utilisation one second in 50. Process ``p`` (host ``p // 8``) uses GPU
    ``p % 8``: NVML sees the even ones (``gpu_processes`` rows every second), the rows of
    ``p % 4 = 1`` name it in ``cuda_visible_devices``, the rest count every GPU of their host.
    """
    gpus, procs = 7 * 8, 7 * 8
    store.command(f"""
INSERT INTO {store.db}.gpu_devices
    (ts, host, gpu_index, gpu_uuid, gpu_name, sm_util, mem_util, mem_used, mem_total, batch_id)
SELECT toDateTime({t0} + intDiv(number, {gpus})) AS ts, concat('host-', toString(intDiv(number % {gpus}, 8))),
    toUInt16(number % 8), concat('GPU-', toString(number % {gpus})), 'H200',
    if(cityHash64(number) % 50 = 0, NULL,
       if(cityHash64(number % {gpus}, intDiv(toUInt32(ts), 5)) % 4 = 0, 3, 60 + cityHash64(number) % 40)),
    50, 1000, 80000, toString(intDiv(toUInt32(ts), 10))
FROM numbers({seconds * gpus})""")
    store.command(f"""
INSERT INTO {store.db}.gpu_processes (ts, host, pid, gpu_index, gpu_uuid, sm_util, mem_used, batch_id)
SELECT toDateTime({t0} + intDiv(number, {procs // 2})) AS ts, concat('host-', toString(intDiv(p, 8))),
    toUInt32(10000 + p), toUInt16(p % 8), concat('GPU-', toString(p)), 50, 1000, toString(intDiv(toUInt32(ts), 10))
FROM (SELECT number, (number % {procs // 2}) * 2 AS p FROM numbers({seconds * procs // 2}))""")
    return seconds * gpus


def time_queries(
    service: QueryService, t0: int, t1: int, reps: int, *, gpu: bool = False
) -> dict[str, tuple[list[float], str]]:
    """Milliseconds per run of each query over ``[t0, t1)``, interleaved, and which table answered.

    With ``gpu`` (the range holds GPU rows): lines (which then classifies every second) and
    top with ``gpu_state=idle``.
    """
    calls: dict[str, Callable[[], object]] = {
        "top": lambda: service.top("{}", str(t0), str(t1), limit=100),
        "flamegraph": lambda: service.flamegraph("{}", str(t0), str(t1)),
        "lines": lambda: service.lines("{}", str(t0), str(t1), limit=100),
    }
    if gpu:
        calls = {
            "lines": calls["lines"],
            "top gpu_state=idle": lambda: service.top("{}", str(t0), str(t1), limit=100, gpu_state="idle"),
        }
    times: dict[str, list[float]] = {name: [] for name in calls}
    sources: dict[str, str] = {}
    for _ in range(reps):
        for name, call in calls.items():
            started = time.perf_counter()
            result = call()
            times[name].append((time.perf_counter() - started) * 1e3)
            sources[name] = f"read from {getattr(result, 'source', 'samples')}"
    return {name: (runs, sources[name]) for name, runs in times.items()}


def month(args: argparse.Namespace, reps: int) -> list[Result]:
    """The same queries over a 30-day range, through the per-minute rollup when the schema has one."""
    rows = 20_000 if args.quick else int(args.month_rows * 1_000_000)
    with scratch(f"{NAME}-month") as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            tables = {r[0] for r in store.query(f"SELECT name FROM system.tables WHERE database = '{store.db}'")}
            rollups = sorted(t for t in tables if ROLLUP.match(t))
            if not rollups:
                note = "pending: the schema has no rollup table (samples_1m, ...) yet"
                case = "30-day range through the rollup"
                return [Result(NAME, case, float("nan"), "ms", "<= 1000 ms", note=note, skipped=True)]
            now = int(time.time()) // 60 * 60 - 600
            add_rows(store, seed_stacks(store, STACKS), now - MONTH, 0, rows, per_second=rows / MONTH)
            rolled = ", ".join(
                f"{store.query(f'SELECT count() FROM {store.db}.{t}')[0][0]:,} rows in {t}" for t in rollups
            )
            times = time_queries(QueryService(store), now - MONTH, now, reps)
        finally:
            store.close()
    results = []
    for name, (runs, source) in times.items():
        target, met = ("", None) if name == "lines" else ("<= 1000 ms", median(runs) <= 1000)
        note = f"range {spread(runs)}; {source}; {fmt(rows / 1e6)}M raw rows over 30 days; {rolled}"
        if name == "lines":
            note += "; no GPU data in range, so lines reads the rollup like top"
        results.append(Result(NAME, f"{name} over a 30-day range", median(runs), "ms", target, met, note))
    return results


def _results(times: dict[str, tuple[list[float], str]], size: int, suffix: str, note: str = "") -> list[Result]:
    """Rows of the table for one size's ``times``; the targets apply from 10M rows."""
    results = []
    for name, (runs, source) in times.items():
        value = median(runs)
        target, met = ("", None)
        if size >= 10_000_000:  # the targets are stated for 10M rows
            target, met = f"<= {TARGETS_MS[name]:g} ms", value <= TARGETS_MS[name]
        notes = "; ".join(filter(None, (f"range {spread(runs)}", source, note)))
        results.append(Result(NAME, f"{name} over {fmt(size / 1e6)}M rows{suffix}", value, "ms", target, met, notes))
    return results


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    sizes = [100_000] if args.quick else [int(float(s) * 1e6) for s in args.sizes.split(",")]
    reps = 2 if args.quick else args.reps
    results: list[Result] = []
    load_s: list[str] = []
    with scratch(NAME) as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            pool = seed_stacks(store, 300 if args.quick else STACKS)
            service = QueryService(store)
            span = max(sizes) // PER_SECOND + 1
            t0 = int(time.time()) - span - 600
            have = 0
            for size in sizes:
                started = time.perf_counter()
                add_rows(store, pool, t0, have, size - have, per_second=PER_SECOND)
                load_s.append(f"{fmt(size / 1e6)}M in {time.perf_counter() - started:.0f} s")
                have = size
                results += _results(time_queries(service, t0, t0 + span + 1, reps), size, "")
            gpu_rows = add_gpu_rows(store, t0, span + 1)
            gpu_times = time_queries(service, t0, t0 + span + 1, reps, gpu=True)
            results += _results(gpu_times, have, " with GPU data", f"{gpu_rows:,} gpu_devices rows")
            total = store.query(f"SELECT count(), sum(count) FROM {store.db}.samples")[0]
        finally:
            store.close()
    results += month(args, reps)
    params: dict[str, object] = {
        "rows": f"{total[0]:,} rows holding {total[1]:,} samples; {PROCS} processes, {PER_SECOND} rows/s",
        "GPU data": "last, over the largest size's range: 8 GPUs on each of 7 hosts (the 8th has none), idle in a "
        "quarter of their 5-second blocks; NVML rows for half the processes, cuda_visible_devices for a quarter",
        "stacks": f"{len(pool)} distinct, ~30 frames; selector {{}} over the whole range",
        "generated": "; ".join(load_s),
        "runs": f"{reps} per query per size, interleaved",
    }
    return results, params


def stages(args: argparse.Namespace, reps: int) -> list[Result]:
    """Where the lines query's time goes (``--stages``, a diagnostic): its steps timed alone.

    Rows load with the rollup views (without GPU data lines reads the rollup), then GPU
    rows over the whole range (:func:`add_gpu_rows`). Steps, whole range, empty selector:
    one ``GROUP BY stack_id`` over raw rows and over ``samples_1m`` (what every profile
    query needs); the per-second GPU states alone (``gpu_sec`` of
    :func:`flamehouse.collector.gpu_state.state_ctes`); the classified per-stack counts
    alone (every raw row looked up in ``gpu_sec``); the product's lines query as it runs
    when the range has GPU data, and as it runs when it has none (rollup, no classification).
    """
    from flamehouse.collector import lines
    from flamehouse.collector.filters import FilterBuilder
    from flamehouse.collector.gpu_state import MATERIALIZE_SETTINGS, state_ctes
    from flamehouse.collector.rollup import classifying, query_params, rows_sql

    size = 100_000 if args.quick else int(float(args.sizes.split(",")[-1]) * 1e6)
    with scratch(f"{NAME}-stages") as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            span = size // PER_SECOND + 1
            t0 = int(time.time()) - span - 600
            add_rows(store, seed_stacks(store, STACKS), t0, 0, size, per_second=PER_SECOND)
            add_gpu_rows(store, t0, span)
            service = QueryService(store)
            where = FilterBuilder(store).profile("{}", str(t0), str(t0 + span), None)
            plan, db, settings = service.plan(where), store.db, MATERIALIZE_SETTINGS if service.materialize else ""
            classify = classifying(where, plan)
            group = "SELECT count() FROM (SELECT stack_id, sum(count) FROM {} WHERE {} GROUP BY stack_id)"
            labels = rows_sql(db, where, classify.coarse or classify, "host, pid, labels")
            counts, _, _ = lines.lines_counts_ctes(where, plan, db, has_gpu=True)
            plain, _, _ = lines.lines_counts_ctes(where, plan, db, has_gpu=False, materialize=service.materialize)
            steps = {  # (SQL, the plan whose parameters it binds)
                "GROUP BY stack_id over raw rows": (group.format(f"{db}.samples", where.sql), plan),
                f"GROUP BY stack_id over {plan.source}": (
                    group.format(rows_sql(db, where, plan, "stack_id, count"), 1),
                    plan,
                ),
                "per-second GPU states alone (gpu_sec)": (
                    f"WITH {state_ctes(db, where.sql, rows=labels, narrow=False)} SELECT count() FROM gpu_sec",
                    classify,
                ),
                "classified per-stack counts alone": (
                    f"WITH {counts} SELECT sum(n), sum(busy), sum(idle) FROM counts",
                    classify,
                ),
                "lines query with GPU data (product)": (lines.lines_sql(db, counts) + settings, classify),
                "lines query without GPU data (product)": (lines.lines_sql(db, plain, split=False) + settings, plan),
            }
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(reps):
                for name, (sql, bind) in steps.items():
                    started = time.perf_counter()
                    store.query(sql, {**query_params(where, bind), "limit": 100})
                    times[name].append((time.perf_counter() - started) * 1e3)
        finally:
            store.close()
    return [
        Result(
            NAME,
            f"lines stages over {fmt(size / 1e6)}M rows: {name}",
            median(runs),
            "ms",
            note=f"context (--stages); range {spread(runs)}",
        )
        for name, runs in times.items()
    ]


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--stages", action="store_true", help="instead, time the steps of the lines query (at the last --sizes)"
        )
        parser.add_argument("--sizes", default="1,10", help="row counts in millions, ascending (default 1,10)")
        parser.add_argument("--reps", type=int, default=3, help="runs per query and size (default 3)")
        parser.add_argument("--month-rows", type=float, default=3, help="millions of rows over 30 days (default 3)")

    args = parse_args(__doc__ or NAME, extra)
    params: dict[str, object]
    if args.stages:
        results, params = stages(args, 2 if args.quick else args.reps), {"mode": "--stages (diagnostic)"}
    else:
        results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

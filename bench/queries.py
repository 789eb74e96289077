"""Read-query latency over many stored sample rows: top, flame graph, lines; growth with rows.

The store is a temporary embedded chDB migrated with the product's schema. Frames and
stacks (3,000 distinct stacks ~30 frames deep from :mod:`profiles`, ids from
:mod:`flamehouse.proto.ids`, so the queries' joins resolve) are written with
:meth:`Store.insert`. Sample rows are generated inside ClickHouse with ``INSERT ... SELECT
... FROM numbers()``: 64 processes on 8 hosts in 4 services, 4 threads each, ~40 rows per
process and second, stacks drawn with a heavy skew from the 3,000, counts 1-8. Rows are
added in steps (1M, 10M; ``--sizes 1,10,30`` for 30M; quick mode 100k) and after each step every query runs
over the whole time range with an empty selector (the worst case), interleaved
(top, flame, lines, top, ...); medians are reported. Then, in a fresh store, 3M rows
spread over 30 days are queried over the whole month: where the schema has rollups
(``samples_1m``, ``samples_1h``, filled by materialized views on insert), top and flame
graph read them; each row's note says which table answered.
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
TARGETS_MS = {"top": 500.0, "flamegraph": 1000.0, "lines": 500.0}
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
    'cpu', map('local_rank', toString(p % 8), 'world_size', '64'),
    pool[1 + (cityHash64(p, th, intDiv(t, 600)) + toUInt64(pow((cityHash64(number) % 1000003) / 1000003, 2.5)
        * {WORKING_SET})) % {len(pool)}],
    toUInt32(1 + cityHash64(number, 1) % 8),
    concat(toString(p), '-', toString(intDiv(t, 10)))
FROM (
    SELECT number, number % {PROCS} AS p, intDiv(number, {PROCS}) % 4 AS th,
           toUInt32({t0} + toUInt32(number / {per_second!r})) AS t
    FROM numbers({start}, {count})
)""")


def time_queries(service: QueryService, t0: int, t1: int, reps: int) -> dict[str, tuple[list[float], str]]:
    """Milliseconds per run of each query over ``[t0, t1)``, interleaved, and which table answered."""
    calls: dict[str, Callable[[], object]] = {
        "top": lambda: service.top("{}", str(t0), str(t1), limit=100),
        "flamegraph": lambda: service.flamegraph("{}", str(t0), str(t1)),
        "lines": lambda: service.lines("{}", str(t0), str(t1), limit=100),
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
            note += "; lines always reads raw seconds (GPU-busy/idle per second), kept 14 days"
        results.append(Result(NAME, f"{name} over a 30-day range", median(runs), "ms", target, met, note))
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
                times = time_queries(service, t0, t0 + span + 1, reps)
                for name, (runs, source) in times.items():
                    value = median(runs)
                    target, met = ("", None)
                    if size >= 10_000_000:  # the targets are stated for 10M rows
                        target, met = f"<= {TARGETS_MS[name]:g} ms", value <= TARGETS_MS[name]
                    case = f"{name} over {fmt(size / 1e6)}M rows"
                    results.append(Result(NAME, case, value, "ms", target, met, f"range {spread(runs)}; {source}"))
            total = store.query(f"SELECT count(), sum(count) FROM {store.db}.samples")[0]
        finally:
            store.close()
    results += month(args, reps)
    params: dict[str, object] = {
        "rows": f"{total[0]:,} rows holding {total[1]:,} samples; {PROCS} processes, {PER_SECOND} rows/s",
        "stacks": f"{len(pool)} distinct, ~30 frames; selector {{}} over the whole range",
        "generated": "; ".join(load_s),
        "runs": f"{reps} per query per size, interleaved",
    }
    return results, params


def stages(args: argparse.Namespace, reps: int) -> list[Result]:
    """Where the lines query's time goes (``--stages``, a diagnostic): its steps timed alone over raw rows.

    The store's materialized views are dropped first (lines reads raw seconds only), so
    the rows load quickly. Steps: one ``GROUP BY stack_id`` over the selected rows (what
    every profile query needs), the GPU classification step alone (``classified_ctes``),
    the product's lines query, and the same query with its counts taken straight from
    ``samples`` (busy = idle = 0): what a range without GPU data could run.
    """
    from flamehouse.collector import lines
    from flamehouse.collector.filters import FilterBuilder
    from flamehouse.collector.gpu_state import GpuFilter, classified_ctes

    size = 100_000 if args.quick else int(float(args.sizes.split(",")[-1]) * 1e6)
    with scratch(f"{NAME}-stages") as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            for (view,) in store.query(
                f"SELECT name FROM system.tables WHERE database = '{store.db}' AND engine = 'MaterializedView'"
            ):
                store.command(f"DROP VIEW {store.db}.{view}")
            t0 = int(time.time()) - size // PER_SECOND - 600
            add_rows(store, seed_stacks(store, STACKS), t0, 0, size, per_second=PER_SECOND)
            where = FilterBuilder(store).build("{}", str(t0), str(t0 + size // PER_SECOND + 1), None, "cpu")
            db, gpu = store.db, GpuFilter()
            plain = (
                f"counts AS (SELECT stack_id, sum(count) AS n, toUInt64(0) AS busy, toUInt64(0) AS idle, "
                f"sum(sum(count)) OVER () AS grand FROM {db}.samples WHERE {where.sql} GROUP BY stack_id)"
            )
            product = lines.lines_sql(db, where.sql, gpu)
            steps = {
                "GROUP BY stack_id alone": f"SELECT count() FROM (SELECT stack_id, sum(count) FROM {db}.samples "
                f"WHERE {where.sql} GROUP BY stack_id)",
                "GPU classification step alone": f"WITH {classified_ctes(db, where.sql)} SELECT count() FROM classified",  # noqa: E501
                "lines query (product)": product,
                "lines without GPU classification": product.replace(lines._counts_ctes(db, where.sql, gpu), plain),
            }
            bound = {**where.params, **gpu.params, "limit": 100}
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(reps):
                for name, sql in steps.items():
                    started = time.perf_counter()
                    store.query(sql, bound)
                    times[name].append((time.perf_counter() - started) * 1e3)
        finally:
            store.close()
    return [
        Result(
            NAME,
            f"lines stages over {fmt(size / 1e6)}M raw rows: {name}",
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

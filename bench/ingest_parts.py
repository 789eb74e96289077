"""Where an ingested row's time goes: the collector's steps measured one by one, each against its alternative.

A diagnostic for ``ingest`` (BENCHMARKS.md), not one of issue 7's targets. On the benchmark's own
sample columns (``bench/ingest.py``'s batches), in one temporary chDB with the product's schema,
interleaved, medians:

* validation per sample row, with and without the remembered frame and stack ids;
* one insert of all rows (~50k) into ``samples``: without views, with the product's views and settings,
  with ``optimize_on_insert`` left on, and with both rollups fed from ``samples`` (before migration 004);
* the fixed cost of a small insert (one batch, ~525 rows) into ``samples`` and into a table no view reads;
* the engine's own CPU per sample row (process CPU time, all threads): the rows inserted in groups of
  24 batches with merges stopped, then merged into one part per table (``OPTIMIZE ... FINAL``), into
  ``samples`` with its rollup views and into a copy no view reads. A lower bound of what the store
  costs per row before any collector work: a steady store merges each row more than once;

    python bench/ingest_parts.py [--rounds N]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import Any

from harness import Result, median, parse_args, report, scratch, spread
from ingest import build_batches

from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.collector.validate import IngestLimits, VerifiedIds, validate
from flamehouse.collector.writer import SAMPLE_COLUMNS, SAMPLE_INSERT_SETTINGS, sample_columns

NAME = "ingest_parts"
_VIEW = (
    "CREATE MATERIALIZED VIEW {db}.{name}_{tier}_mv TO {db}.{name}_{tier} AS "
    "SELECT {bucket}(ts) AS ts, service, job, host, pid, rank, thread, kind, labels, stack_id, sum(count) AS count "
    "FROM {db}.{source} GROUP BY ts, service, job, host, pid, rank, thread, kind, labels, stack_id"
)


def _timed(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def _validate_all(batches: list[Any], now: float, known: VerifiedIds | None) -> None:
    for batch in batches:
        validate(batch, IngestLimits(), now=now, ttl_days=14, known=known)


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    rounds = 1 if args.quick else args.rounds
    batches = build_batches(8 if args.quick else 96)
    now = time.time()
    times: dict[str, list[float]] = {}

    def add(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    rows = sum(len(b.samples.time) for b in batches)
    for _ in range(rounds):
        add("validate cold", _timed(_validate_all, batches, now, None))
        known = VerifiedIds()
        _validate_all(batches, now, known)  # warm, as in a steady collector
        add("validate warm", _timed(_validate_all, batches, now, known))
    per_batch = [sample_columns(validate(b, IngestLimits(), now=now, ttl_days=14)) for b in batches]
    merged: list[list[Any]] = [[] for _ in SAMPLE_COLUMNS]
    for columns in per_batch:
        for target, column in zip(merged, columns, strict=True):
            target.extend(column)
    with scratch(NAME) as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            db = store.db
            store.command(f"CREATE TABLE {db}.plain AS {db}.samples")
            store.command(f"CREATE TABLE {db}.old AS {db}.samples")  # both rollups read it: migration 003
            for tier, bucket in (("1m", "toStartOfMinute"), ("1h", "toStartOfHour")):
                store.command(f"CREATE TABLE {db}.old_{tier} AS {db}.samples_{tier}")
                store.command(_VIEW.format(db=db, name="old", tier=tier, bucket=bucket, source="old"))
            for r in range(rounds):
                big: list[tuple[str, str, dict[str, Any]]] = [
                    ("all rows: no views", "plain", SAMPLE_INSERT_SETTINGS),
                    ("all rows: product (004 views, optimize_on_insert=0)", "samples", SAMPLE_INSERT_SETTINGS),
                    ("all rows: 004 views, optimize_on_insert on", "samples", {}),
                    ("all rows: 003 views (both from samples), optimize_on_insert on", "old", {}),
                ]
                for label, table, settings in big:
                    token = f"{label}{r}"
                    add(
                        label, _timed(store.insert, table, SAMPLE_COLUMNS, merged, dedup_token=token, settings=settings)
                    )
                for label, table in (("one batch: into samples", "samples"), ("one batch: no views", "plain")):
                    cols, token = per_batch[r % len(per_batch)], f"s{label}{r}"
                    add(
                        label,
                        _timed(
                            store.insert,
                            table,
                            SAMPLE_COLUMNS,
                            cols,
                            dedup_token=token,
                            settings=SAMPLE_INSERT_SETTINGS,
                        ),
                    )
            for r in range(rounds):
                for label, tables in (
                    ("with views", ("samples", "samples_1m", "samples_1h")),
                    ("no views", ("plain",)),
                ):
                    insert_cpu, merge_cpu = _engine_cpu(store, tables, per_batch, group=24, token=f"e{label}{r}")
                    add(f"engine CPU {label}: insert", insert_cpu / rows)
                    add(f"engine CPU {label}: merge", merge_cpu / rows)
        finally:
            store.close()
    return _results(times, rows), {"rows": f"{rows:,} sample rows in {len(batches)} batches", "rounds": rounds}


def _results(times: dict[str, list[float]], rows: int) -> list[Result]:
    results = [
        Result(
            NAME,
            f"validate, {label}",
            median(times[f"validate {label}"]) * 1e6 / rows,
            "us/row",
            note=spread([t * 1e6 / rows for t in times[f"validate {label}"]]),
        )
        for label in ("cold", "warm")
    ]
    for label, seconds in times.items():
        if label.startswith("engine CPU"):
            results.append(
                Result(
                    NAME,
                    f"{label}, per sample row",
                    median(seconds) * 1e6,
                    "us CPU/row",
                    note=spread([t * 1e6 for t in seconds]),
                )
            )
    for tier in ("with views", "no views"):
        per_row = median(times[f"engine CPU {tier}: insert"]) + median(times[f"engine CPU {tier}: merge"])
        results.append(
            Result(
                NAME,
                f"engine alone {tier}: rows/s on 2 CPUs at that CPU per row",
                2 / per_row,
                "rows/s",
                note="insert + one merge, nothing else on the machine; an upper bound for a collector here",
            )
        )
    for label, seconds in times.items():
        if not label.startswith(("validate", "engine CPU")):
            results.append(
                Result(
                    NAME,
                    f"insert, {label}",
                    median(seconds) * 1e3,
                    "ms",
                    note=f"{spread([t * 1e3 for t in seconds])}",
                )
            )
    return results


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _engine_cpu(
    store: Store, tables: tuple[str, ...], per_batch: list[list[Any]], *, group: int, token: str
) -> tuple[float, float]:
    """CPU seconds to insert ``per_batch`` into ``tables[0]`` in groups; then to merge each table to one part."""
    db = store.db
    for table in tables:
        store.command(f"TRUNCATE TABLE {db}.{table}")
        store.command(f"SYSTEM STOP MERGES {db}.{table}")
    started = _cpu()
    for i in range(0, len(per_batch), group):
        cols: list[list[Any]] = [[] for _ in SAMPLE_COLUMNS]
        for columns in per_batch[i : i + group]:
            for target, column in zip(cols, columns, strict=True):
                target.extend(column)
        store.insert(tables[0], SAMPLE_COLUMNS, cols, dedup_token=f"{token}-{i}", settings=SAMPLE_INSERT_SETTINGS)
    inserted = _cpu()
    for table in tables:
        store.command(f"SYSTEM START MERGES {db}.{table}")
        store.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
    return inserted - started, _cpu() - inserted


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")

    args = parse_args(__doc__.splitlines()[0] if __doc__ else NAME, extra)
    results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

"""Bytes on disk per py-spy sample and per stored row, after merges.

Workload (full mode): 8 processes of one host (ranks 0-7 of a training job) x 4 threads
x 1 hour, sampled at 99 Hz with idle threads included (``--idle``, kind ``wall``), so every
thread contributes 99 samples a second: 11.4 million py-spy samples. The main thread moves
over a working set of 300 stacks (~30 frames deep) with a Zipf-like skew; the three helper
threads sit in 2-4 stacks; a tenth of each working set changes every minute (stack churn).
One batch per process and 10 s window, with its own ``batch_id``, as the agent sends.

Rows are exactly what the collector writes: for each process the labels are decoded by the
collector's own ``validate`` (from an :func:`~flamehouse.agent.batch.encode`-d window), and
the first window of every process is checked column by column against the collector's
``sample_columns(validate(encode(...)))``. Rows are then inserted in large chunks (the part
layout does not matter: ``OPTIMIZE TABLE ... FINAL`` merges everything), with every stack
and frame the pool holds. Bytes are ``system.parts`` ``bytes_on_disk`` of the active parts
of ``samples``, ``stacks`` and ``frames``; the rollups (``samples_1m``, ``samples_1h``,
filled by materialized views on insert, where the schema has them) on their own row.
"""

from __future__ import annotations

import argparse
import random
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from harness import Result, fmt, parse_args, report, scratch
from profiles import SimProcess, sim_process, stack_pool, to_rows, window_counts

from flamehouse.agent.batch import AgentIdentity, encode
from flamehouse.agent.model import Kind
from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn
from flamehouse.collector.validate import IngestLimits, ProcessInfo, validate
from flamehouse.collector.writer import FRAME_COLUMNS, SAMPLE_COLUMNS, STACK_COLUMNS, sample_columns
from flamehouse.proto import ids, ingest_pb2

NAME = "storage"
TARGET = 1.0  # bytes per py-spy sample
WINDOW = 10
RATE = 99
THREADS = (("MainThread", 300, RATE), ("pin_memory", 4, RATE), ("QueueFeederThread", 3, RATE), ("grpc_poll", 2, RATE))
HOST = "gpu-node-17"
#: Rollup tables (samples_1m, samples_1h, ...), filled from samples by materialized views, where the schema has them.
ROLLUP = re.compile(r"^samples_\d+[smhd]$")
KIND_WALL = ingest_pb2.KIND_WALL


class Columns:
    """Sample columns in the collector's order, filled window by window."""

    def __init__(self) -> None:
        self.cols: list[list[Any]] = [[] for _ in SAMPLE_COLUMNS]

    def __len__(self) -> int:
        return len(self.cols[0])

    def add(
        self, proc: ProcessInfo, batch_id: str, counts: list[tuple[int, int, str, int, int]], sids: list[int]
    ) -> None:
        labels = dict(proc.labels)
        for t, tid, name, index, n in counts:
            row = (
                t,
                proc.service,
                proc.job,
                proc.host,
                proc.pid,
                proc.rank,
                name,
                tid,
                KIND_WALL,
                labels,
                sids[index],
                n,
                batch_id,
            )
            for col, value in zip(self.cols, row, strict=True):
                col.append(value)


def decoded(sim: SimProcess, counts: list[tuple[int, int, str, int, int]], batch_id: str) -> Any:
    batch = encode(to_rows(sim, counts, Kind.WALL), [sim.info], AgentIdentity(f"agent-{HOST}", HOST), batch_id)
    return validate(batch, IngestLimits(), now=time.time(), ttl_days=14)


def fill(store: Store, procs: int, seconds: int) -> tuple[int, int]:
    """Writes the workload; returns (rows, py-spy samples)."""
    pool = stack_pool(300, seed=5)
    sids = [ids.stack_id([ids.frame_id(f.function, f.file, f.line) for f in s]) for s in pool]
    rng = random.Random(9)
    sims = [sim_process(20_000 + r, pool, rng, rank=r, threads=THREADS) for r in range(procs)]
    t0 = int(time.time()) - seconds - 600
    infos: dict[int, ProcessInfo] = {}
    rows = samples = 0
    chunk = Columns()
    for start in range(t0, t0 + seconds, WINDOW):
        for sim in sims:
            counts = window_counts(sim, start, WINDOW)
            batch_id = uuid.uuid4().hex
            if sim.info.pid not in infos:  # the collector's own decoding, checked against ours
                batch = decoded(sim, counts, batch_id)
                infos[sim.info.pid] = batch.processes[0]
                check = Columns()
                check.add(infos[sim.info.pid], batch_id, counts, sids)
                if [list(c) for c in sample_columns(batch)] != check.cols:
                    raise AssertionError("sample columns differ from the collector's: fix storage.py")
            chunk.add(infos[sim.info.pid], batch_id, counts, sids)
            samples += sum(c[4] for c in counts)
        if len(chunk) >= 300_000:
            rows += _flush(store, chunk)
            chunk = Columns()
    rows += _flush(store, chunk)
    _write_pool(store, pool, sids)
    return rows, samples


def _flush(store: Store, chunk: Columns) -> int:
    if len(chunk):
        store.insert("samples", SAMPLE_COLUMNS, chunk.cols)
    return len(chunk)


def _write_pool(store: Store, pool: list[Any], sids: list[int]) -> None:
    """Every frame and stack of the pool, as the collector's ``_write`` would (once each)."""
    today = datetime.now(UTC).date()
    frames = sorted({f for s in pool for f in s}, key=lambda f: (f.file, f.function, f.line))
    store.insert(
        "frames",
        FRAME_COLUMNS,
        [
            [ids.frame_id(f.function, f.file, f.line) for f in frames],
            [ids.function_id(f.function, f.file) for f in frames],
            [f.function for f in frames],
            [f.file for f in frames],
            [f.line for f in frames],
            [today] * len(frames),
        ],
    )
    store.insert(
        "stacks",
        STACK_COLUMNS,
        [
            sids,
            [[ids.frame_id(f.function, f.file, f.line) for f in s] for s in pool],
            [[ids.function_id(f.function, f.file) for f in s] for s in pool],
            [today] * len(pool),
        ],
    )


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    procs, seconds = (2, 60) if args.quick else (args.procs, int(args.hours * 3600))
    with scratch(NAME) as tmp:
        store = Store(StoreConfig(embedded_dsn(tmp)))
        try:
            migrate(store)
            started = time.perf_counter()
            rows, samples = fill(store, procs, seconds)
            filled = time.perf_counter() - started
            tables = {r[0] for r in store.query(f"SELECT name FROM system.tables WHERE database = '{store.db}'")}
            rollups = sorted(t for t in tables if ROLLUP.match(t))
            for table in ("samples", "stacks", "frames", *rollups):
                store.command(f"OPTIMIZE TABLE {store.db}.{table} FINAL")
            sizes = dict(
                store.query(
                    f"SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = '{store.db}' AND active "
                    "GROUP BY table"
                )
            )
            columns = store.query(
                f"SELECT name, data_compressed_bytes FROM system.columns WHERE database = '{store.db}' "
                "AND table = 'samples' ORDER BY data_compressed_bytes DESC"
            )
            parts = store.query(
                f"SELECT count() FROM system.parts WHERE database = '{store.db}' AND active AND table = 'samples'"
            )[0][0]
        finally:
            store.close()
    rolled = {t: int(sizes.get(t, 0)) for t in rollups}
    total = sum(int(sizes.get(t, 0)) for t in ("samples", "stacks", "frames"))
    per_sample = total / samples
    heavy = ", ".join(f"{name} {int(b) / rows:.2f}" for name, b in columns[:5] if int(b)) or "n/a (compact part)"
    results = [
        Result(
            NAME,
            "bytes on disk per py-spy sample (samples + stacks + frames)",
            per_sample,
            "B",
            f"<= {TARGET:g}",
            per_sample <= TARGET,
            f"{fmt(total / 1e6)} MB for {samples:,} samples",
        ),
        Result(
            NAME,
            "bytes on disk per stored row (samples + stacks + frames)",
            total / rows,
            "B",
            note=f"{rows:,} rows, {samples / rows:.1f} samples per row",
        ),
        Result(
            NAME,
            "bytes on disk per row, samples table alone",
            int(sizes.get("samples", 0)) / rows,
            "B",
            note=f"heaviest columns, B/row: {heavy}; {parts} part(s) after OPTIMIZE FINAL",
        ),
        Result(
            NAME,
            f"bytes on disk per py-spy sample, rollups ({' + '.join(rolled) or 'none'})",
            sum(rolled.values()) / samples,
            "B",
            note="context: kept longer than raw samples; "
            + (", ".join(f"{t} {b / samples:.3f}" for t, b in rolled.items()) or "the schema has no rollup table"),
        ),
        Result(
            NAME,
            "stacks + frames tables",
            (int(sizes.get("stacks", 0)) + int(sizes.get("frames", 0))) / 1e3,
            "kB",
            note="300 stacks ~30 frames deep and their frames",
        ),
    ]
    params: dict[str, object] = {
        "workload": f"{procs} processes x {len(THREADS)} threads x {seconds / 3600:g} h at {RATE} Hz, "
        f"kind=wall, one batch per process per {WINDOW} s",
        "generated": f"{fmt(filled)} s to generate and insert",
    }
    return results, params


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--procs", type=int, default=8, help="processes (default 8)")
        parser.add_argument("--hours", type=float, default=1.0, help="hours of profile (default 1)")

    args = parse_args(__doc__ or NAME, extra)
    results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

"""Ingest throughput: simulated agents → one collector process → embedded ClickHouse.

Batches are built with the agent's own encoder (:func:`flamehouse.agent.batch.encode`) from
simulated training processes (:mod:`profiles`: 300 distinct stacks ~30 frames deep, 4 threads,
one batch per 10 s window of one process, ~530 rows and ~1,100 py-spy samples each), spread
over 64 processes on 8 hosts. They are serialised ahead of time and pushed, gzip-compressed
like the agent does, over real gRPC on loopback by client subprocesses (several concurrent
pushes each) to an in-process collector (:func:`flamehouse.serve.start`, temporary chDB).

The limit it is compared with: the same sample columns (what the collector would write,
computed ahead of time) inserted straight into the same ``samples`` table with
clickhouse-connect, one insert per batch with the same deduplication token setting
(through :meth:`Store.insert`, a lock around ``client.insert``). For context, the same rows
inserted 16 batches per insert and all at once. Collector and raw rounds alternate;
medians reported.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import grpc
from harness import Result, median, parse_args, report, scratch, spread
from profiles import sim_process, stack_pool, window_rows

from flamehouse import serve
from flamehouse.agent.batch import AgentIdentity, encode
from flamehouse.collector.service import PUSH_METHOD
from flamehouse.collector.store import StoreConfig, embedded_dsn
from flamehouse.collector.validate import IngestLimits, validate
from flamehouse.collector.writer import SAMPLE_COLUMNS, SAMPLE_INSERT_SETTINGS, sample_columns
from flamehouse.proto import ingest_pb2

NAME = "ingest"
ROWS_TARGET = 200_000
RATIO_TARGET = 0.5
HOSTS, PROCS_PER_HOST, WINDOW = 8, 8, 10
PLAIN = "samples_plain"  # a copy of samples without the rollup's materialized view


def build_batches(n: int, seed: int = 7) -> list[ingest_pb2.Batch]:
    """``n`` batches: one 10 s window each, cycling over the simulated processes."""
    pool = stack_pool(300)
    rng = random.Random(seed)
    procs = [sim_process(10_000 + i, pool, rng, service=f"svc-{i % 4}", rank=i) for i in range(HOSTS * PROCS_PER_HOST)]
    start = int(time.time()) - 2 * 3600
    batches = []
    for b in range(n):
        i = b % len(procs)
        host = f"host-{i // PROCS_PER_HOST}"
        rows = window_rows(procs[i], start + (b // len(procs)) * WINDOW, WINDOW)
        batches.append(encode(rows, [procs[i].info], AgentIdentity(f"agent-{host}", host)))
    return batches


def with_id(batch: ingest_pb2.Batch, batch_id: str) -> ingest_pb2.Batch:
    copy = ingest_pb2.Batch()
    copy.CopyFrom(batch)
    copy.batch_id = batch_id
    copy.attempt = 1  # a first try, as the agent's shipper sends it
    return copy


def client(address: str, rounds: list[list[bytes]], threads: int, barrier: Barrier, results: Any) -> None:
    """A client process: per round, waits at ``barrier``, pushes its payloads, reports timing."""
    channel = grpc.insecure_channel(address, compression=grpc.Compression.Gzip)
    push = channel.unary_unary(PUSH_METHOD, request_serializer=None, response_deserializer=ingest_pb2.Ack.FromString)
    try:
        with ThreadPoolExecutor(threads) as pool:
            for payloads in rounds:
                barrier.wait()
                started, cpu = time.monotonic(), time.process_time()
                acks = list(pool.map(lambda p: push(p, timeout=120), payloads))
                ended, cpu = time.monotonic(), time.process_time() - cpu
                results.put((started, ended, sum(a.rows for a in acks), sum(a.samples for a in acks), cpu))
    finally:
        channel.close()


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    rounds = 1 if args.quick else args.rounds
    n_batches = 16 if args.quick else args.batches
    n_clients, threads = 2, args.pushes // 2
    template = build_batches(n_batches)
    # Per round and client: collector payloads; per round: raw sample columns. All built before timing.
    payloads = [
        [
            [with_id(b, f"c{r}-{i}").SerializeToString() for i, b in enumerate(template) if i % n_clients == c]
            for r in range(rounds)
        ]
        for c in range(n_clients)
    ]
    raw = [
        [
            (f"raw{r}-{i}", sample_columns(validate(b, IngestLimits(), now=time.time(), ttl_days=14)))
            for i, b in enumerate(template)
        ]
        for r in range(rounds)
    ]
    rows_per_round = sum(len(b.samples.time) for b in template)
    samples_per_round = sum(sum(b.samples.count) for b in template)
    rates: dict[str, list[float]] = {
        key: []
        for key in (
            "collector",
            "samples",
            "raw",
            "group",
            "bulk",
            "ratio",
            "group_ratio",
            "collector_cpu",
            "sender_cpu",
        )
    }
    ctx = mp.get_context("spawn")
    with scratch(NAME) as tmp:
        services = serve.start(StoreConfig(embedded_dsn(tmp)), grpc_listen="127.0.0.1:0", http_listen=None)
        store = services.store
        if _plain_copy(store):
            rates |= {"plain": [], "plain_bulk": []}
        barrier, queue = ctx.Barrier(n_clients + 1), ctx.Queue()
        address = f"127.0.0.1:{services.grpc_port}"
        procs = [
            ctx.Process(target=client, args=(address, payloads[c], threads, barrier, queue)) for c in range(n_clients)
        ]
        try:
            for p in procs:
                p.start()
            cpu: Counter[str] = Counter()
            for r in range(rounds):
                _settle(store)  # the raw rounds' parts are merged before the collector's round starts
                before, process_cpu = _thread_cpu(), _process_cpu()
                barrier.wait(timeout=300)
                timings = [queue.get(timeout=600) for _ in procs]
                cpu.update(_thread_cpu() - before)
                rates["collector_cpu"].append((_process_cpu() - process_cpu) / rows_per_round)
                rates["sender_cpu"].append(sum(t[4] for t in timings) / rows_per_round)
                elapsed = max(t[1] for t in timings) - min(t[0] for t in timings)
                rows, samples = sum(t[2] for t in timings), sum(t[3] for t in timings)
                if rows != rows_per_round:
                    raise RuntimeError(f"collector acked {rows} rows, expected {rows_per_round}")
                rates["collector"].append(rows / elapsed)
                rates["samples"].append(samples / elapsed)
                _raw_round(store, raw[r], rates, threads * n_clients)
            stored = store.query(f"SELECT count() FROM {store.db}.samples")[0][0]
            if stored != 4 * rows_per_round * rounds:
                raise RuntimeError(f"samples table holds {stored} rows, expected {4 * rows_per_round * rounds}")
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join()
            services.stop(grace=5)
    params: dict[str, object] = {
        "batches per round": f"{n_batches} ({rows_per_round:,} rows, {samples_per_round:,} py-spy samples)",
        "rows per batch": f"{rows_per_round / n_batches:.0f}",
        "senders": f"{n_clients} client processes x {threads} concurrent pushes, gzip",
        "rounds": rounds,
        "collector process CPU by thread name during the collector rounds": ", ".join(
            f"{name or '?'} {seconds:.1f} s" for name, seconds in cpu.most_common(4)
        )
        + f" (for {rounds * rows_per_round:,} rows)",
    }
    return summarise(rates, threads * n_clients), params


def _process_cpu() -> float:
    """CPU seconds of this process so far, all threads, ended ones included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> Counter[str]:
    """CPU seconds (user + system) of this process's live threads, by thread name without digits.

    chDB's threads name themselves (``MergeMutate``, ...); Python's threads keep the process's name.
    """
    found: Counter[str] = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip().rstrip("0123456789")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        found[name] += (int(fields[11]) + int(fields[12])) / tick
    return found


def _settle(store: Any, timeout: float = 60.0) -> None:
    """Waits (at most ``timeout`` s) until the engine runs no merge, so that a round is not charged for the last."""
    deadline = time.monotonic() + timeout
    while store.query("SELECT count() FROM system.merges")[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)


def _raw_round(store: Any, batches: list[tuple[str, list[Any]]], rates: dict[str, list[float]], group: int) -> None:
    """One round of the raw inserts, each kind once, appended to ``rates``."""
    _settle(store)
    rates["raw"].append(_raw_inserts(store, batches, 1, "single"))
    if "plain" in rates:
        _settle(store)
        rates["plain"].append(_raw_inserts(store, batches, 1, "plain", table=PLAIN))
        _settle(store)
        rates["plain_bulk"].append(_raw_inserts(store, batches, len(batches), "plainbulk", table=PLAIN))
    _settle(store)
    rates["group"].append(_raw_inserts(store, batches, group, "group"))
    _settle(store)
    rates["bulk"].append(_raw_inserts(store, batches, len(batches), "bulk"))
    rates["ratio"].append(rates["collector"][-1] / rates["raw"][-1])
    rates["group_ratio"].append(rates["collector"][-1] / rates["group"][-1])


def summarise(rates: dict[str, list[float]], group: int) -> list[Result]:
    rate, ratio = median(rates["collector"]), median(rates["ratio"])
    results = [
        Result(
            NAME,
            "collector: sample rows/s",
            rate,
            "rows/s",
            f">= {ROWS_TARGET:,}",
            rate >= ROWS_TARGET,
            f"range {spread(rates['collector'])}",
        ),
        Result(
            NAME,
            "collector: py-spy samples/s",
            median(rates["samples"]),
            "samples/s",
            note=f"range {spread(rates['samples'])}",
        ),
        Result(
            NAME,
            "raw clickhouse-connect insert, one per batch: rows/s",
            median(rates["raw"]),
            "rows/s",
            note=f"range {spread(rates['raw'])}",
        ),
        Result(
            NAME,
            "collector / raw insert",
            ratio,
            "x",
            f">= {RATIO_TARGET}",
            ratio >= RATIO_TARGET,
            f"median of per-round ratios, range {spread(rates['ratio'])}",
        ),
        Result(
            NAME,
            f"raw insert, {group} batches per insert: rows/s",
            median(rates["group"]),
            "rows/s",
            note=f"context: as many batches per insert as pushes in flight, the collector's best grouping; "
            f"range {spread(rates['group'])}",
        ),
        Result(
            NAME,
            f"collector / raw insert of {group} batches per insert",
            median(rates["group_ratio"]),
            "x",
            note="context: the collector against the store's rate for its own best grouping, same round; "
            f"range {spread(rates['group_ratio'])}",
        ),
        Result(
            NAME,
            "raw insert, all rows of a round at once: rows/s",
            median(rates["bulk"]),
            "rows/s",
            note=f"context: the store's rate with large inserts; range {spread(rates['bulk'])}",
        ),
    ]
    if "plain" in rates:
        results += [
            Result(
                NAME,
                "raw insert, one per batch, into a copy of samples without the rollup views: rows/s",
                median(rates["plain"]),
                "rows/s",
                note=f"context: what the rollups' materialized views cost; range {spread(rates['plain'])}",
            ),
            Result(
                NAME,
                "raw insert, all rows at once, into the copy without the rollup views: rows/s",
                median(rates["plain_bulk"]),
                "rows/s",
                note=f"context: compare with the same insert into samples; range {spread(rates['plain_bulk'])}",
            ),
        ]
    collector_cpu, sender_cpu = median(rates["collector_cpu"]), median(rates["sender_cpu"])
    results += [
        Result(
            NAME,
            "collector process CPU per sample row",
            collector_cpu * 1e6,
            "us CPU/row",
            note=f"all its threads (gRPC, validation, the engine's inserts and merges); range "
            f"{spread([c * 1e6 for c in rates['collector_cpu']])}",
        ),
        Result(
            NAME,
            "senders' CPU per sample row",
            sender_cpu * 1e6,
            "us CPU/row",
            note=f"the client processes (gzip, gRPC); range {spread([c * 1e6 for c in rates['sender_cpu']])}",
        ),
        Result(
            NAME,
            f"rows/s {os.cpu_count()} CPUs allow at that CPU per row (collector + senders)",
            (os.cpu_count() or 1) / (collector_cpu + sender_cpu),
            "rows/s",
            note="the ceiling of this benchmark on this machine, whatever the scheduling",
        ),
    ]
    return results


def _plain_copy(store: Any) -> bool:
    """Creates ``samples_plain``, a copy of ``samples`` no view reads, when the schema has materialized views."""
    views = store.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND engine = 'MaterializedView'",
        {"db": store.db},
    )[0][0]
    if views:
        store.command(f"CREATE TABLE {store.db}.{PLAIN} AS {store.db}.samples")
    return bool(views)


def _raw_inserts(
    store: Any, batches: list[tuple[str, list[Any]]], group: int, label: str, *, table: str = "samples"
) -> float:
    """Rows/s inserting ``batches`` ``group`` at a time (columns concatenated, one token per insert)."""
    merged = []
    for i in range(0, len(batches), group):
        columns: list[list[Any]] = [[] for _ in SAMPLE_COLUMNS]
        for _, batch in batches[i : i + group]:
            for target, column in zip(columns, batch, strict=True):
                target.extend(column)
        merged.append((f"{batches[i][0]}-{label}", columns))
    started = time.monotonic()
    for token, columns in merged:
        store.insert(table, SAMPLE_COLUMNS, columns, dedup_token=token, settings=SAMPLE_INSERT_SETTINGS)
    return sum(len(c[0]) for _, c in merged) / (time.monotonic() - started)


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
        parser.add_argument("--batches", type=int, default=96, help="batches per round (default 96)")
        parser.add_argument(
            "--pushes",
            type=int,
            default=24,
            help="concurrent pushes, split over 2 client processes (default 24, below the collector's limit of 32: "
            "a fleet sending 200k rows/s in ~500-row batches has ~40 in flight at ~0.1 s per push)",
        )

    args = parse_args(__doc__ or NAME, extra)
    results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

"""A training-like, CPU-bound Python job with a fixed amount of work, for bench/job_slowdown.py.

It optionally starts idle threads blocked on an Event (as ``import torch`` does),
optionally starts Pyroscope's in-process profiler, waits ``--settle`` seconds so an
attaching profiler is sampling, then runs ``--steps`` steps of a tiny pure-Python MLP
(forward and backward through a deep call stack, ~30 frames, like a real model) and
writes the work's wall and CPU seconds, the seconds the main thread ran and waited in the
CPU run queue (``/proc/self/task/TID/schedstat``), and the wall seconds of each of
``--chunks`` equal parts, to ``--out`` as JSON. Only the standard library is
imported unless ``--pyroscope`` is given, so the baseline carries no profiler code.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from pathlib import Path

WIDTH = 12
DEPTH = 12  # modules deep: each adds two frames, as torch's Module.__call__ and forward do


def dot(row: list[float], x: list[float]) -> float:
    total = 0.0
    for w, v in zip(row, x, strict=True):
        total += w * v
    return total


def linear(weights: list[list[float]], x: list[float]) -> list[float]:
    return [max(0.0, dot(row, x)) for row in weights]


def grad(weights: list[list[float]], x: list[float], y: list[float], lr: float) -> None:
    for row, out in zip(weights, y, strict=True):
        if out > 0.0:
            for j, v in enumerate(x):
                row[j] -= lr * v * 1e-3


def module_call(layers: list[list[list[float]]], i: int, x: list[float]) -> list[float]:
    return forward(layers, i, x)


def forward(layers: list[list[list[float]]], i: int, x: list[float]) -> list[float]:
    """Layer ``i`` then, recursively, the layers after it (so the stack grows with depth)."""
    y = linear(layers[i], x)
    grad(layers[i], x, y, 0.01)
    if i + 1 < len(layers):
        return module_call(layers, i + 1, [v / (1.0 + v) for v in y])
    return y


def step(layers: list[list[list[float]]], batch: list[float]) -> float:
    return sum(module_call(layers, 0, batch))


def train(steps: int, chunks: int) -> list[float]:
    """Runs ``steps`` steps; returns the wall time of each of ``chunks`` equal parts."""
    rng = random.Random(0)
    layers = [[[rng.uniform(-1, 1) for _ in range(WIDTH)] for _ in range(WIDTH)] for _ in range(DEPTH)]
    times: list[float] = []
    for c in range(chunks):
        started = time.perf_counter()
        for _ in range(steps * (c + 1) // chunks - steps * c // chunks):
            step(layers, [rng.random() for _ in range(WIDTH)])
        times.append(time.perf_counter() - started)
    return times


def schedstat() -> tuple[float, float]:
    """Seconds this thread ran on a CPU and waited in the run queue for one (Linux schedstat)."""
    try:
        fields = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").read_text().split()
    except OSError:
        return 0.0, 0.0
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def idle_worker(stop: threading.Event) -> None:
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, required=True, help="training steps (the fixed amount of work)")
    parser.add_argument("--idle-threads", type=int, default=0, help="threads blocked on an Event")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds to wait before the timed work")
    parser.add_argument("--pyroscope", default="", help="start pyroscope-io, sending to this URL")
    parser.add_argument("--chunks", type=int, default=20, help="parts of the work timed one by one")
    parser.add_argument("--out", required=True, help="JSON file receiving the timings (wall and CPU seconds)")
    args = parser.parse_args()
    stop = threading.Event()
    threads = [
        threading.Thread(target=idle_worker, args=(stop,), name=f"idle-{i}", daemon=True)
        for i in range(args.idle_threads)
    ]
    for thread in threads:
        thread.start()
    if args.pyroscope:
        import pyroscope

        pyroscope.configure(application_name="bench.train_job", server_address=args.pyroscope, sample_rate=100)
    time.sleep(args.settle)
    wall, cpu, (run, wait) = time.perf_counter(), time.process_time(), schedstat()
    chunks = train(args.steps, args.chunks)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    run, wait = (after - before for after, before in zip(schedstat(), (run, wait), strict=True))
    doc = {"wall": wall, "cpu": cpu, "run": run, "wait": wait, "chunks": chunks}
    Path(args.out).write_text(json.dumps(doc))
    stop.set()
    for thread in threads:
        thread.join()
    if args.pyroscope:
        pyroscope.shutdown()


if __name__ == "__main__":
    main()

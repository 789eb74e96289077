"""A small CPU "training job" for ``flamehouse demo``: pure Python, no dependencies.

A data-loader worker process tokenizes and augments text batches and hands
them to the trainer through a queue; the trainer runs forward, backward and an
optimizer step on a tiny dense model and logs metrics. Run it alone with
``python -m flamehouse.workload --seconds 10``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import random
import time
from queue import Empty

Batch = list[list[float]]
WIDTH = 48


def tokenize(text: str) -> list[int]:
    return [sum(ord(c) for c in word) % 997 for word in text.split()]


def augment(tokens: list[int], rng: random.Random) -> list[float]:
    values = [((t * 31 + rng.randrange(7)) % 101) / 101.0 for t in tokens]
    values += [0.0] * (WIDTH - len(values))
    return values[:WIDTH]


def load_batch(rng: random.Random, size: int = 16) -> Batch:
    words = ["gpu", "kernel", "tensor", "batch", "loss", "grad", "step", "epoch", "token", "layer"]
    texts = [" ".join(rng.choice(words) for _ in range(WIDTH)) for _ in range(size)]
    return [augment(tokenize(text), rng) for text in texts]


def loader_worker(queue: mp.Queue[Batch | None], seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        queue.put(load_batch(rng))
    queue.put(None)


def forward(weights: Batch, batch: Batch) -> Batch:
    return [[math.tanh(sum(w * x for w, x in zip(row, sample, strict=True))) for row in weights] for sample in batch]


def backward(weights: Batch, batch: Batch, out: Batch) -> Batch:
    grads = [[0.0] * WIDTH for _ in weights]
    for sample, activations in zip(batch, out, strict=True):
        for i, a in enumerate(activations):
            delta = (1 - a * a) * a
            row = grads[i]
            for j, x in enumerate(sample):
                row[j] += delta * x
    return grads


def optimizer_step(weights: Batch, grads: Batch, lr: float = 0.01) -> None:
    for row, grow in zip(weights, grads, strict=True):
        for j, g in enumerate(grow):
            row[j] -= lr * g


def log_metrics(step: int, out: Batch) -> str:
    loss = sum(a * a for row in out for a in row) / max(1, len(out))
    return f"step={step} loss={loss:.4f}"


def train(seconds: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    weights = [[rng.uniform(-0.1, 0.1) for _ in range(WIDTH)] for _ in range(WIDTH // 2)]
    queue: mp.Queue[Batch | None] = mp.Queue(maxsize=8)
    worker = mp.Process(target=loader_worker, args=(queue, seconds, seed), name="loader", daemon=True)
    worker.start()
    step = 0
    while True:
        try:
            batch = queue.get(timeout=seconds + 10)
        except Empty:
            break
        if batch is None:
            break
        out = forward(weights, batch)
        optimizer_step(weights, backward(weights, batch, out))
        step += 1
        if step % 500 == 0:
            print(log_metrics(step, out), flush=True)
    worker.join(timeout=5)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    steps = train(args.seconds)
    print(f"trained {steps} steps in {args.seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()

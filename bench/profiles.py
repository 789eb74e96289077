"""Synthetic but realistic profiles: the stacks and per-second samples of ML training processes.

* :func:`stack_pool`: distinct stacks, root first, 20-40 frames deep, grown as random walks
  down one shared call tree (so stacks share prefixes as real ones do: ``<module>`` → ``main``
  → ``train`` → ``forward`` → ...), over a vocabulary of torch-like functions and files.
* :class:`ThreadModel`: which stacks one thread hits, with a Zipf-like skew whose hot set
  drifts over time (stack churn: phases of training, data loading, evaluation).
* :func:`window_rows`: the :class:`~flamehouse.agent.model.SampleRow` list one py-spy window
  of one process would produce, ready for :func:`flamehouse.agent.batch.encode`.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate

from flamehouse.agent.model import Frame, Kind, ProcessInfo, SampleRow

SITE = "/opt/conda/lib/python3.11/site-packages"
FILES = (
    "/srv/app/train.py",
    "/srv/app/engine.py",
    "/srv/app/model/transformer.py",
    "/srv/app/model/attention.py",
    "/srv/app/data/dataset.py",
    "/srv/app/data/transforms.py",
    f"{SITE}/torch/nn/modules/module.py",
    f"{SITE}/torch/nn/modules/linear.py",
    f"{SITE}/torch/nn/modules/container.py",
    f"{SITE}/torch/nn/modules/normalization.py",
    f"{SITE}/torch/nn/functional.py",
    f"{SITE}/torch/_tensor.py",
    f"{SITE}/torch/autograd/__init__.py",
    f"{SITE}/torch/autograd/graph.py",
    f"{SITE}/torch/optim/adamw.py",
    f"{SITE}/torch/optim/optimizer.py",
    f"{SITE}/torch/utils/data/dataloader.py",
    f"{SITE}/torch/utils/data/_utils/fetch.py",
    f"{SITE}/torch/utils/data/_utils/collate.py",
    f"{SITE}/torch/cuda/__init__.py",
    f"{SITE}/numpy/core/fromnumeric.py",
    f"{SITE}/PIL/Image.py",
    "/usr/lib/python3.11/threading.py",
    "/usr/lib/python3.11/queue.py",
)
FUNCTIONS = (
    "forward",
    "_call_impl",
    "_wrapped_call_impl",
    "__call__",
    "linear",
    "layer_norm",
    "attention",
    "scaled_dot_product",
    "softmax",
    "dropout",
    "gelu",
    "step",
    "_single_tensor_adamw",
    "zero_grad",
    "backward",
    "_engine_run_backward",
    "__next__",
    "_next_data",
    "fetch",
    "__getitem__",
    "collate",
    "default_collate",
    "to_tensor",
    "normalize",
    "resize",
    "decode",
    "synchronize",
    "item",
    "wait",
    "get",
    "_worker_loop",
    "run",
    "train_one_epoch",
    "evaluate",
    "log_metrics",
    "clip_grad_norm_",
)
ROOT = (
    Frame("<module>", "/srv/app/train.py", 212),
    Frame("main", "/srv/app/train.py", 188),
    Frame("train", "/srv/app/train.py", 141),
)


#: Chance that a walk reaches a callee not seen before (divided by the callees already seen).
NEW_CALLEE = 0.12
#: Distinct frames the stacks are made of (py-spy frames are per line).
VOCABULARY = 1500


@dataclass
class _Node:
    frame: Frame
    children: list[_Node] = field(default_factory=list)


def stack_pool(n: int, seed: int = 1, min_depth: int = 20, max_depth: int = 40) -> list[tuple[Frame, ...]]:
    """``n`` distinct stacks, root first, sharing prefixes like a real program's."""
    rng = random.Random(seed)
    vocab = [Frame(rng.choice(FUNCTIONS), rng.choice(FILES), rng.randint(1, 900)) for _ in range(VOCABULARY)]
    root = _Node(ROOT[-1])
    seen: set[tuple[Frame, ...]] = set()
    pool: list[tuple[Frame, ...]] = []
    while len(pool) < n:
        depth = rng.randint(min_depth, max_depth) - len(ROOT)
        node, path = root, list(ROOT)
        for level in range(depth):
            node = _child(node, level, vocab, rng)
            path.append(node.frame)
        stack = tuple(path)
        if stack not in seen:
            seen.add(stack)
            pool.append(stack)
    return pool


def _child(node: _Node, level: int, vocab: list[Frame], rng: random.Random) -> _Node:
    """A callee of ``node``: usually one seen before (skewed to the first), sometimes a new one.

    A new callee is drawn, skewed, from the frames typical of its depth, so the same
    functions (``linear``, ``_call_impl``) recur under many callers, as in a real program.
    """
    if node.children and rng.random() >= NEW_CALLEE / len(node.children):
        k = min(int(rng.paretovariate(1.2)) - 1, len(node.children) - 1)
        return node.children[k]
    k = (level * 31 + int(rng.paretovariate(0.8))) % len(vocab)
    node.children.append(_Node(vocab[k]))
    return node.children[-1]


class ThreadModel:
    """The stacks one thread hits: a skewed choice from its working set, drifting every ``phase`` s."""

    def __init__(self, pool: list[tuple[Frame, ...]], working_set: int, rng: random.Random, phase: int = 60) -> None:
        self._pool, self._rng, self._phase = pool, rng, phase
        self._set = rng.sample(range(len(pool)), min(working_set, len(pool)))
        self._cum = list(accumulate(1.0 / (rank + 1) ** 1.1 for rank in range(len(self._set))))
        self._current_phase = -1

    def second(self, t: int, samples: int) -> Counter[int]:
        """Pool indexes of the ``samples`` samples taken in second ``t``, counted."""
        if t // self._phase != self._current_phase:
            self._current_phase = t // self._phase
            self._drift()
        return Counter(self._rng.choices(self._set, cum_weights=self._cum, k=samples))

    def _drift(self) -> None:
        """Churn: a tenth of the working set changes rank or is replaced by another stack."""
        for _ in range(max(1, len(self._set) // 10)):
            i = self._rng.randrange(len(self._set))
            if self._rng.random() < 0.5:
                j = self._rng.randrange(len(self._set))
                self._set[i], self._set[j] = self._set[j], self._set[i]
            else:
                self._set[i] = self._rng.randrange(len(self._pool))


@dataclass
class SimProcess:
    """A simulated profiled process: its identity and one model per thread."""

    info: ProcessInfo
    #: The stacks the thread models' indexes point into.
    pool: list[tuple[Frame, ...]]
    #: (tid, thread name, model, samples per second) per thread.
    threads: list[tuple[int, str, ThreadModel, int]]


THREADS = (("MainThread", 300, 99), ("pin_memory", 4, 6), ("QueueFeederThread", 3, 3), ("grpc_poll", 2, 2))
"""(name, working-set size, samples per second) of the threads of a simulated training process, cpu kind."""


def sim_process(
    pid: int,
    pool: list[tuple[Frame, ...]],
    rng: random.Random,
    *,
    service: str = "trainer",
    rank: int = 0,
    threads: tuple[tuple[str, int, int], ...] = THREADS,
) -> SimProcess:
    """A process with ``threads`` (name, working set, samples/s) and torchrun-like labels."""
    labels = {"service": service, "job": "job-1", "rank": str(rank), "local_rank": str(rank % 8), "world_size": "64"}
    info = ProcessInfo(pid, 1, 1_700_000_000_000 + pid, f"python /srv/app/train.py --rank {rank}", labels)
    models = [(pid * 100 + i, name, ThreadModel(pool, size, rng), rate) for i, (name, size, rate) in enumerate(threads)]
    return SimProcess(info, pool, models)


def window_counts(proc: SimProcess, start: int, seconds: int) -> list[tuple[int, int, str, int, int]]:
    """``(second, tid, thread name, pool index, count)`` of one window: seconds ``[start, start + seconds)``."""
    out: list[tuple[int, int, str, int, int]] = []
    for t in range(start, start + seconds):
        for tid, name, model, rate in proc.threads:
            out.extend((t, tid, name, index, count) for index, count in model.second(t, rate).items())
    return out


def window_rows(proc: SimProcess, start: int, seconds: int, kind: Kind = Kind.CPU) -> list[SampleRow]:
    """The rows of one py-spy window of ``proc``, as the agent's sampler would make them."""
    return to_rows(proc, window_counts(proc, start, seconds), kind)


def to_rows(proc: SimProcess, counts: list[tuple[int, int, str, int, int]], kind: Kind) -> list[SampleRow]:
    pid, pool = proc.info.pid, proc.pool
    return [SampleRow(t, pid, tid, name, pool[index], kind, n) for t, tid, name, index, n in counts]

"""A job with a process tree: parent_work in the parent, early_worker in a child
started at once, late_worker in a child started 1.5 s later. Exits with code 3."""

import multiprocessing as mp
import sys
import time


def burn(seconds):
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        for i in range(5000):
            total += i * i
    return total


def early_worker(seconds):
    burn(seconds)


def late_worker(seconds):
    burn(seconds)


def parent_work(seconds):
    burn(seconds)


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    early = mp.Process(target=early_worker, args=(seconds,))
    early.start()
    parent_work(1.5)
    late = mp.Process(target=late_worker, args=(seconds - 1.5,))
    late.start()
    parent_work(seconds - 1.5)
    early.join()
    late.join()
    sys.exit(3)

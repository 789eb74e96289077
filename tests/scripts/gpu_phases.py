"""A training-like job whose "GPU" idles while it loads data and is busy while it trains.

Every even wall-clock second it runs load_batch(), every odd one train_step(),
and for each second appends to the replay file (argv[1]) the utilisation that
phase implies for GPU 0: 0 % while loading, 90 % while training. Runs argv[2] seconds.
"""

import json
import sys
import time


def spin_until(deadline):
    total = 0
    while time.time() < deadline:
        for i in range(2000):
            total += i * i
    return total


def load_batch(deadline):
    return spin_until(deadline)


def train_step(deadline):
    return spin_until(deadline)


def main(path, seconds):
    end = time.time() + seconds
    with open(path, "a", encoding="utf-8") as replay:
        while time.time() < end:
            second = int(time.time())
            loading = second % 2 == 0
            (load_batch if loading else train_step)(second + 1)
            row = {
                "time": second,
                "index": 0,
                "uuid": "GPU-replay-0",
                "name": "Replayed GPU",
                "sm_util": 0 if loading else 90,
            }
            replay.write(json.dumps(row) + "\n")
            replay.flush()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))

"""A workload with a known CPU split: spin_three (75 %) and spin_one (25 %).

Both functions run the same loop body, one three times as many iterations as
the other, so their self-time shares are 3:1. Runs for argv[1] seconds.
"""

import sys
import time


def spin_three():
    total = 0
    for i in range(30000):
        total += i * i
    return total


def spin_one():
    total = 0
    for i in range(10000):
        total += i * i
    return total


def main(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        spin_three()
        spin_one()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)

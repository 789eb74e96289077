"""A CPU loop beside 150 idle threads (what `import torch` leaves behind); runs argv[1] seconds."""

import sys
import threading
import time

stop = threading.Event()
threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(150)]
for t in threads:
    t.start()
deadline = time.monotonic() + float(sys.argv[1])
total = 0
while time.monotonic() < deadline:
    for i in range(5000):
        total += i * i
stop.set()

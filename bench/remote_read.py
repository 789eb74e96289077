"""What one remote memory read costs on this machine: the unit py-spy pays per sample many times over.

py-spy reads a target's thread states, frames, code objects and names with
``process_vm_readv``; its CPU per sample is roughly (reads per sample) x (cost of one read).
This times ``process_vm_readv`` of 64 bytes from a child Python process, and ``getppid`` for
scale, both through ctypes (the ctypes call overhead, ~0.5 us, is in both figures).

    python bench/remote_read.py [--calls N]

Context for ``agent_cost`` (BENCHMARKS.md), not one of issue 7's targets.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import time


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def measure(calls: int) -> tuple[float, float]:
    """(CPU µs per 64-byte process_vm_readv, µs per getppid)."""
    libc = ctypes.CDLL(None, use_errno=True)
    code = "import sys, time; x = bytearray(4096); print(id(x), flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        assert child.stdout is not None
        address = int(child.stdout.readline())
        buf = ctypes.create_string_buffer(64)
        local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), 64)
        remote = _IoVec(address, 64)
        started = time.process_time()
        for _ in range(calls):
            if libc.process_vm_readv(child.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != 64:
                raise OSError(ctypes.get_errno(), "process_vm_readv failed (ptrace permission?)")
        read_us = (time.process_time() - started) * 1e6 / calls
        started = time.perf_counter()
        for _ in range(calls):
            libc.getppid()
        syscall_us = (time.perf_counter() - started) * 1e6 / calls
        return read_us, syscall_us
    finally:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "remote_read")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    read_us, syscall_us = measure(args.calls)
    print(f"process_vm_readv 64 B: {read_us:.2f} us CPU per call; getppid: {syscall_us:.2f} us per call")


if __name__ == "__main__":
    main()

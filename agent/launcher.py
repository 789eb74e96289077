"""``flamehouse run -- CMD``: launch a job and profile its whole process tree.

The job runs as a child; SIGINT and SIGTERM sent to the agent are forwarded to
it. Every Python process in its tree (the job itself, DataLoader workers,
torchrun ranks, started now or later) is profiled. When the job exits, the
last windows are flushed and the agent exits with the job's exit code (128+N
when a signal N killed it, as a shell reports it).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import FrameType

from flamehouse.agent.profiler import Profiler

log = logging.getLogger(__name__)

_FORWARDED = (signal.SIGINT, signal.SIGTERM)


def exit_code(returncode: int) -> int:
    """The shell's convention: 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def launch(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Starts the job; raises FileNotFoundError/PermissionError with the command named."""
    try:
        return subprocess.Popen(list(command))
    except OSError as err:
        raise OSError(err.errno, f"cannot start {command[0]!r}: {err.strerror}") from err


def supervise(job: subprocess.Popen[bytes], profiler: Profiler, flush_timeout: float = 30.0) -> int:
    """Profiles ``job``'s tree until it exits, forwarding signals; returns its exit code."""
    previous = {sig: signal.getsignal(sig) for sig in _FORWARDED}

    def forward(signum: int, _frame: FrameType | None) -> None:
        log.info("forwarding signal=%s to job pid=%d", signal.Signals(signum).name, job.pid)
        with contextlib.suppress(ProcessLookupError):
            job.send_signal(signum)

    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        for sig in _FORWARDED:
            signal.signal(sig, forward)
    try:
        profiler.run(until=lambda: job.poll() is not None)
        returncode = job.wait()
    finally:
        if on_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    profiler.stop(timeout=flush_timeout)
    if not profiler.shipper.flush(flush_timeout):
        log.warning("collector did not take every batch within %.0fs", flush_timeout)
    return exit_code(returncode)

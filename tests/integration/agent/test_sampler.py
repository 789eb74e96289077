"""Real py-spy over real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from flamehouse.agent import TargetError
from flamehouse.agent.model import ProcessInfo
from flamehouse.agent.sampler import SamplerConfig, find_pyspy, run_window
from tests.conftest import Spawn, python_script

pytestmark = pytest.mark.integration


def config(**kw: object) -> SamplerConfig:
    return SamplerConfig(pyspy=find_pyspy(), **kw)  # type: ignore[arg-type]


def info(pid: int) -> ProcessInfo:
    return ProcessInfo(pid, 0, 0, "")


def test_window_conserves_samples_and_sees_the_known_split(spawn: Spawn) -> None:
    job = spawn(*python_script("known_split.py", "10"))
    time.sleep(0.5)
    window = run_window(config(window=3), info(job.pid), threading.Event())
    assert window.reported_samples > 200
    assert window.samples + window.empty == window.reported_samples  # every sample py-spy took is in the rows
    self_counts: Counter[str] = Counter()
    for row in window.rows:
        self_counts[row.stack[-1].function] += row.count
    share = self_counts["spin_three"] / (self_counts["spin_three"] + self_counts["spin_one"])
    assert 0.65 < share < 0.85, self_counts
    seconds = {row.time for row in window.rows}
    assert int(window.start) <= min(seconds) and max(seconds) <= int(window.end)
    assert len(seconds) >= 3
    assert all(row.stack[0].function == "<module>" for row in window.rows)


def test_target_exiting_mid_window_ends_the_window_with_its_samples(spawn: Spawn) -> None:
    job = spawn(*python_script("known_split.py", "1.5"))
    time.sleep(0.3)
    began = time.monotonic()
    window = run_window(config(window=10), info(job.pid), threading.Event())
    assert time.monotonic() - began < 6
    assert window.note == "target exited"
    assert window.samples > 0 and window.samples + window.empty == window.reported_samples


def test_stop_event_ends_the_window_early_and_keeps_samples(spawn: Spawn) -> None:
    job = spawn(*python_script("known_split.py", "30"))
    time.sleep(0.3)
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    began = time.monotonic()
    window = run_window(config(window=20), info(job.pid), stop)
    assert time.monotonic() - began < 8
    assert window.samples > 50 and window.samples + window.empty == window.reported_samples


def test_missing_pid_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match=r"pid 4000000: process does not exist"):
        run_window(config(window=1), info(4_000_000), threading.Event())


def test_non_python_process_is_a_clear_error(spawn: Spawn) -> None:
    sleeper = spawn("sleep", "30", stdout=subprocess.DEVNULL)
    time.sleep(0.2)
    with pytest.raises(TargetError, match=rf"pid {sleeper.pid}: not a Python process"):
        run_window(config(window=1), info(sleeper.pid), threading.Event())


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv to drop rights"
)
def test_missing_ptrace_permission_is_a_clear_error(spawn: Spawn) -> None:
    """py-spy run as an unprivileged user cannot attach to root's process: the error says how to fix it."""
    bindir = Path(tempfile.mkdtemp(prefix="flamehouse-nobody-"))
    try:
        bindir.chmod(0o755)
        pyspy = bindir / "py-spy"
        shutil.copy(find_pyspy(), pyspy)
        wrapper = bindir / "py-spy-as-nobody"
        wrapper.write_text(f'#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {pyspy} "$@"\n')
        wrapper.chmod(0o755)
        job = spawn(*python_script("known_split.py", "10"))
        time.sleep(0.3)
        with pytest.raises(TargetError, match=rf"pid {job.pid}: no permission to attach \(ptrace\).*CAP_SYS_PTRACE"):
            run_window(SamplerConfig(pyspy=str(wrapper), window=1), info(job.pid), threading.Event())
    finally:
        shutil.rmtree(bindir)


def test_window_ends_on_time_even_when_pyspy_falls_behind(spawn: Spawn) -> None:
    """py-spy's --duration counts samples; with 150 threads it lags, so windows must end on the clock."""
    job = spawn(*python_script("many_threads.py", "30"))
    time.sleep(1.0)
    began = time.monotonic()
    window = run_window(config(window=3), info(job.pid), threading.Event())
    elapsed = time.monotonic() - began
    assert elapsed < 3 + 10, elapsed  # not the 30 s a sample-counted window would take
    assert window.samples > 0 and window.samples + window.empty == window.reported_samples

"""Sampling with py-spy: one child process per target and window.

A window is one ``py-spy record --format speedscope`` run over one pid for
``window`` seconds (py-spy only writes its output when it stops, so sampling
runs in rolling windows). The speedscope output keeps every sample of every
thread in order, so counts are exact: the rows of a window add up to the
``Samples: N`` py-spy prints. py-spy records no per-sample time, so a thread's
i-th of n samples is placed at ``start + (i + 0.5) / n * (end - start)`` and
counted in that second; ``--window 1`` gives exact seconds at the price of one
py-spy start per second.

Errors are data: a target that exits ends its window early with a note; a pid
that is gone, a process that is not Python, or a missing ptrace permission
raise :class:`~flamehouse.agent.TargetError` naming the pid and the cause.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from flamehouse.agent import AgentError, TargetError
from flamehouse.agent.model import Frame, Kind, ProcessInfo, SampleRow, Window

log = logging.getLogger(__name__)

_SAMPLES = re.compile(r"Samples: (\d+) Errors: (\d+)")
_THREAD = re.compile(r'Thread (\d+)(?: "(.*)")?\s*$')
_STARTED = "Sampling process"

#: py-spy's error texts and what they mean for the user.
_CAUSES: tuple[tuple[str, str], ...] = (
    ("Failed to get process executable name", "process does not exist or has exited"),
    ("No such process", "process does not exist or has exited"),
    (
        "Permission",
        "no permission to attach (ptrace): run the agent as root or with CAP_SYS_PTRACE, "
        "and check /proc/sys/kernel/yama/ptrace_scope",
    ),
    (
        "Operation not permitted",
        "no permission to attach (ptrace): run the agent as root or with "
        "CAP_SYS_PTRACE, and check /proc/sys/kernel/yama/ptrace_scope",
    ),
    ("Failed to find python version", "not a Python process (py-spy found no interpreter in it)"),
    ("Failed to find a python interpreter", "not a Python process (py-spy found no interpreter in it)"),
)


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """How py-spy samples; passed down from the CLI."""

    #: Path of the py-spy binary.
    pyspy: str
    #: Samples per second.
    rate: int = 99
    #: Seconds per py-spy run (ended with SIGINT, so py-spy writes what it has).
    window: int = 10
    #: Also sample native (C/C++/Cython) frames (py-spy --native).
    native: bool = False
    #: Only samples holding the GIL (py-spy --gil).
    gil: bool = False
    #: Pause the target per sample (py-spy's default); off by default since it slows
    #: many-thread processes several-fold (py-spy issue #872).
    blocking: bool = False
    #: Include idle threads: wall-clock instead of CPU profiles.
    idle: bool = False
    #: Seconds a py-spy may take to exit after SIGINT (or to start) before it counts as hung.
    hang_grace: float = 20.0

    @property
    def kind(self) -> Kind:
        return Kind.WALL if self.idle else Kind.CPU

    def validate(self) -> None:
        if not 1 <= self.rate <= 1000:
            raise AgentError(f"--rate must be between 1 and 1000 samples per second, got {self.rate}")
        if not 1 <= self.window <= 3600:
            raise AgentError(f"--window must be between 1 and 3600 seconds, got {self.window}")
        if not Path(self.pyspy).exists():
            raise AgentError(f"py-spy not found at {self.pyspy}: install the py-spy package")


def find_pyspy() -> str:
    """The py-spy binary next to this interpreter (the PyPI package's), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise AgentError("py-spy not found: install it with `pip install py-spy`")
    return found


def pyspy_command(cfg: SamplerConfig, pid: int, output: Path) -> list[str]:
    """The py-spy command line for one window over ``pid``."""
    cmd = [cfg.pyspy, "record", "--pid", str(pid), "--format", "speedscope", "--output", str(output)]
    # No --duration: it counts samples, not seconds; the window is ended on time with SIGINT.
    cmd += ["--rate", str(cfg.rate), "--full-filenames"]
    if not cfg.blocking:
        cmd.append("--nonblocking")
    if cfg.native:
        cmd.append("--native")
    if cfg.gil:
        cmd.append("--gil")
    if cfg.idle:
        cmd.append("--idle")
    return cmd


def run_window(cfg: SamplerConfig, process: ProcessInfo, stop: threading.Event) -> Window:
    """Samples ``process`` for one window (or until ``stop`` is set or it exits)."""
    with tempfile.TemporaryDirectory(prefix="flamehouse-pyspy-") as tmp:
        output, errfile = Path(tmp) / "profile.json", Path(tmp) / "stderr.txt"
        with errfile.open("wb") as err:
            child = subprocess.Popen(
                pyspy_command(cfg, process.pid, output),
                stdin=subprocess.DEVNULL,
                # py-spy prints its messages (and its Samples: N line) only when stdout
                # is not /dev/null, so both go to the file we read back.
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal must not end the window early
            )
        launched = time.time()
        start, note = _supervise(cfg, child, errfile, stop)
        end = time.time()
        stderr = errfile.read_text(errors="replace")
        if child.returncode != 0 or not output.exists():
            raise TargetError(process.pid, _cause(stderr, child.returncode))
        start = start if start is not None else launched
        doc = json.loads(output.read_text())
    reported, errors = _reported(stderr)
    if "process exited" in stderr:
        note = "target exited"
    rows = parse_speedscope(doc, pid=process.pid, kind=cfg.kind, start=start, end=end)
    empty = sum(1 for profile in doc.get("profiles", []) for stack in profile.get("samples", []) if not stack)
    return Window(process, start, end, tuple(rows), reported, errors, note, empty)


def _supervise(
    cfg: SamplerConfig, child: subprocess.Popen[bytes], errfile: Path, stop: threading.Event
) -> tuple[float | None, str]:
    """Waits for py-spy; ends its window on time or on ``stop``; kills it if it hangs.

    py-spy's ``--duration`` counts samples, not seconds: a py-spy that falls behind (a
    target with hundreds of threads) would run far past its window. So py-spy runs
    unbounded and the window is ended here with SIGINT once ``window`` seconds have
    passed since sampling started; py-spy then writes what it has. Only a py-spy that
    does not exit within ``hang_grace`` seconds of that SIGINT counts as hung.
    """
    launched = time.monotonic()
    started: float | None = None  # wall clock, when py-spy said it began sampling
    started_mono = launched
    interrupted_at: float | None = None
    note = ""
    while True:
        try:
            child.wait(timeout=0.05 if started is None else 0.2)
            return started, note
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if started is None and _STARTED in errfile.read_text(errors="replace"):
            started, started_mono = time.time(), now
        due = (
            started is not None and now - started_mono >= cfg.window
        ) or now - launched >= cfg.window + cfg.hang_grace
        if interrupted_at is None and (stop.is_set() or due):
            child.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
            interrupted_at, note = now, ("stopped" if stop.is_set() else "")
        if interrupted_at is not None and now - interrupted_at > cfg.hang_grace:
            child.kill()
            child.wait()
            raise TargetError(child.pid, f"py-spy did not exit within {cfg.hang_grace:.0f}s of SIGINT; killed")


def _cause(stderr: str, returncode: int | None) -> str:
    for needle, cause in _CAUSES:
        if needle in stderr:
            return cause
    first = next((line for line in stderr.splitlines() if line.startswith("Error")), "").strip()
    return f"py-spy failed (exit {returncode}): {first or 'no output'}"


def _reported(stderr: str) -> tuple[int, int]:
    match = _SAMPLES.search(stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (-1, 0)


def parse_speedscope(doc: dict[str, Any], *, pid: int, kind: Kind, start: float, end: float) -> list[SampleRow]:
    """Turns py-spy's speedscope document into per-second rows.

    Counts are conserved exactly, except samples with an empty stack (a thread with no
    Python frame), which cannot be stored and are counted by the caller instead.
    """
    shared = doc.get("shared", {}).get("frames", [])
    frames = [Frame(str(f.get("name", "")), str(f.get("file", "")), int(f.get("line") or 0)) for f in shared]
    counts: dict[tuple[int, int, str, tuple[int, ...]], int] = {}
    for profile in doc.get("profiles", []):
        tid, thread = _thread_of(str(profile.get("name", "")))
        samples: Sequence[Sequence[int]] = profile.get("samples", [])
        for second, stack in zip(_seconds(len(samples), start, end), samples, strict=True):
            key = (second, tid, thread, tuple(stack))
            counts[key] = counts.get(key, 0) + 1
    return [
        SampleRow(second, pid, tid, thread, tuple(frames[i] for i in stack), kind, n)
        for (second, tid, thread, stack), n in counts.items()
        if stack
    ]


def _thread_of(name: str) -> tuple[int, str]:
    match = _THREAD.search(name)
    if match is None:
        return 0, name
    return int(match.group(1)), match.group(2) or ""


def _seconds(n: int, start: float, end: float) -> Iterable[int]:
    span = max(end - start, 0.0)
    for i in range(n):
        yield int(start + (i + 0.5) / n * span)


def pyspy_version(pyspy: str) -> str:
    """py-spy's version string, for the agent's identity."""
    out = subprocess.run([pyspy, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.strip() or out.stderr.strip()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True

"""Plumbing shared by the benchmarks: flags, a `flamehouse server` subprocess, statistics, results.

Every benchmark script is runnable alone (``python bench/NAME.py [--quick] [--json FILE]``);
it imports this module from its own folder. A benchmark returns a list of :class:`Result`
rows; :func:`report` prints them and, with ``--json``, writes them for ``bench/run_all.py``.

Figures are medians or ratios of runs interleaved within one invocation (the machines
are shared and noisy: absolute times are never compared across invocations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
FLAMEHOUSE = [PYTHON, "-m", "flamehouse.cli"]
PYSPY = str(Path(PYTHON).parent / "py-spy")


@dataclass(frozen=True, slots=True)
class Result:
    """One figure of a benchmark: a row of the results table."""

    #: Which benchmark (the script's name).
    benchmark: str
    #: What was measured, e.g. "(a) CPU loop: flamehouse run".
    case: str
    value: float
    #: "x" (ratio), "% core", "MB", "rows/s", "ms", "B", ...
    unit: str
    #: The target as text ("<= 1.01"), or "" when the row is context only.
    target: str = ""
    #: Whether the target is met; None for context rows and skipped ones.
    met: bool | None = None
    #: Spread, sample size, workload or why the row was skipped.
    note: str = ""
    #: True when the row could not be measured (value is then meaningless).
    skipped: bool = False


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The flags every benchmark takes: ``--quick`` (prove it runs) and ``--json FILE``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: proves the benchmark runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results here as JSON (for run_all.py)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    return args


def report(name: str, results: Sequence[Result], args: argparse.Namespace, params: dict[str, Any]) -> None:
    """Prints ``results`` as a table and writes them to ``--json`` when given.

    The machine's 1-minute load average before and after is added to ``params``: on a
    shared machine it says how much other work competed with the benchmark.
    """
    cpus = os.cpu_count() or 1
    params = {**params, "load average": f"{args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({cpus} CPUs)"}
    print(f"\n== {name}{' (quick)' if args.quick else ''}")
    for key, value in params.items():
        print(f"   {key}: {value}")
    for r in results:
        value = "skipped" if r.skipped else f"{fmt(r.value)} {r.unit}"
        verdict = (
            ("UNRESOLVED" if r.target and not r.skipped else "") if r.met is None else ("met" if r.met else "MISSED")
        )
        print(f"  {r.case:<55} {value:>16}  {r.target:<10} {verdict:<6} {r.note}")
    if args.json:
        doc = {"benchmark": name, "quick": args.quick, "params": params, "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


def fmt(value: float) -> str:
    """A figure with sensible precision for a table."""
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max, n=N`` of a sample, for the notes column."""
    if not values:
        return "n=0"
    return f"{fmt(min(values))}-{fmt(max(values))}, n={len(values)}"


def rotated(items: Sequence[str], round_no: int) -> list[str]:
    """``items`` rotated by ``round_no``, so no variant always runs first (A B C, B C A, ...)."""
    k = round_no % len(items)
    return [*items[k:], *items[:k]]


def machine() -> dict[str, str]:
    """CPU count, memory and CPU model of this machine."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": str(os.cpu_count()), "memory": f"{mem_gib:.0f} GiB", "cpu_model": model}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; always reaps ``proc``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """A real ``flamehouse server`` subprocess (embedded chDB) on free loopback ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Server:
        self._log = (self.data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *FLAMEHOUSE,
                "server",
                "--data-dir",
                str(self.data_dir),
                "--grpc-listen",
                self.grpc,
                "--http-listen",
                self.http.removeprefix("http://"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            self._wait_healthy(60.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.http}/healthz", timeout=5) as resp:  # noqa: S310 - our own http:// URL
                if resp.status == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"flamehouse server exited: {(self.data_dir / 'server.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("flamehouse server did not become healthy within 60 s")
            time.sleep(0.2)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30.0)
        if self._log is not None:
            self._log.close()


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"flamehouse-bench-{prefix}-") as tmp:
        yield Path(tmp)

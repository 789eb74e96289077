"""How much a profiler slows the job it profiles, at ~100 Hz.

Workloads (``bench/jobs/train_job.py``, a fixed amount of work, timed inside the job):
(a) a CPU-bound training-like loop with a ~30-frame stack; (b) the same with 150
extra threads blocked on an Event, as ``import torch`` leaves behind.

Variants, run interleaved round by round (rotated so none always goes first):

* ``none``: no profiler; ``none (repeat)`` runs it again, so its ratio shows the
  noise floor of this machine;
* ``flamehouse run``: the real CLI (default 10 s windows) shipping to a real
  ``flamehouse server`` subprocess; ``flamehouse run --window 1`` restarts py-spy every
  second (the worst case: attach, parse, encode and ship once a second during the work);
  ``flamehouse run --gil`` samples only the thread holding the GIL (py-spy ``--gil``);
* bare ``py-spy record --nonblocking`` and ``py-spy record`` (blocking, py-spy's default);
* Pyroscope's Python SDK (``pyroscope-io``, in-process, 100 Hz, its defaults otherwise)
  sending to a local HTTP sink; skipped with a note when the package is not importable.

The figure is the median over rounds of (job time / ``none`` job time of the same round),
where job time is the work's wall time minus the time its thread sat in the CPU run queue
(``schedstat``): time running plus time stopped by a profiler, i.e. the wall time the job
would take with a CPU to itself. On a shared 2-vCPU machine the raw wall time mostly
measures other tenants (its noise floor is the ``none (repeat)`` row); it is in the notes
(median and range), with the CPU-time ratio of the job process and, where the profiler
says, the samples it got per second of the job's life and the share that failed (py-spy's
``Samples: N Errors: M``; flamehouse's ``--stats-file`` counters).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness import (
    BENCH,
    FLAMEHOUSE,
    PYSPY,
    PYTHON,
    Result,
    Server,
    median,
    parse_args,
    report,
    rotated,
    scratch,
    spread,
    stop_process,
)

NAME = "job_slowdown"
_PYSPY_SAMPLES = re.compile(r"Samples: (\d+) Errors: (\d+)")
JOB = str(BENCH / "jobs" / "train_job.py")
RATE = 99
WORKLOADS = {"(a) CPU loop": 0, "(b) CPU loop + 150 idle threads": 150}
BASELINE, REPEAT = "none", "none (repeat)"
FLAMEHOUSE_RUN = "flamehouse run"
VARIANTS = (
    BASELINE,
    REPEAT,
    FLAMEHOUSE_RUN,
    "flamehouse run --window 1",
    "flamehouse run --gil",
    "py-spy --nonblocking",
    "py-spy (blocking)",
    "pyroscope-io",
)
TARGET = 1.01
QUICK_VARIANTS = (BASELINE, REPEAT, FLAMEHOUSE_RUN, "py-spy --nonblocking", "py-spy (blocking)", "pyroscope-io")


@dataclass
class Timing:
    wall: float
    cpu: float
    #: Wall time minus run-queue wait of the working thread: running or stopped, seconds.
    busy: float
    #: Whole command's wall time, seconds (profiler start-up and flush included).
    life: float = 0.0
    #: Samples the profiler took and failed to take; -1 when it does not say.
    samples: int = -1
    errors: int = 0


@dataclass
class Series:
    """Timings of one (workload, variant) across rounds; index = round."""

    runs: list[Timing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Sink(BaseHTTPRequestHandler):
    """Accepts Pyroscope's uploads and counts them."""

    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).posts += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, name="pyroscope-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def pyroscope_available() -> bool:
    return importlib.util.find_spec("pyroscope") is not None


def command(variant: str, job: list[str], tmp: Path, server: Server, sink: str) -> list[str]:
    """The command line running ``job`` under ``variant``."""
    if variant in (BASELINE, REPEAT):
        return job
    if variant.startswith(FLAMEHOUSE_RUN):
        extra = variant.removeprefix(FLAMEHOUSE_RUN).split()
        stats = ["--stats-file", str(tmp / "stats.json")]
        return [*FLAMEHOUSE, "run", "--collector", server.grpc, "--gpu", "none", *extra, *stats, "--", *job]
    if variant.startswith("py-spy"):
        out = ["--format", "speedscope", "--output", str(tmp / "pyspy.json"), "--rate", str(RATE)]
        nonblocking = ["--nonblocking"] if "nonblocking" in variant else []
        return [PYSPY, "record", *out, *nonblocking, "--", *job]
    if variant == "pyroscope-io":
        return [*job, "--pyroscope", sink]
    raise ValueError(variant)


def run_once(variant: str, steps: int, idle: int, tmp: Path, *, server: Server, sink: str) -> tuple[Timing, str]:
    """One run; returns its timing and a problem ("" when the profiler did its job)."""
    out = tmp / "timing.json"
    for leftover in (out, tmp / "stats.json", tmp / "pyspy.json"):
        leftover.unlink(missing_ok=True)
    job = [PYTHON, JOB, "--steps", str(steps), "--idle-threads", str(idle), "--out", str(out)]
    posts = _Sink.posts
    started = time.monotonic()
    with (tmp / "stderr.txt").open("wb") as err:
        # py-spy prints its "Samples: N Errors: M" line only when stdout is not /dev/null.
        proc = subprocess.Popen(command(variant, job, tmp, server, sink), stdout=err, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=600)
        finally:
            stop_process(proc)
    life = time.monotonic() - started
    if code != 0 or not out.exists():
        raise RuntimeError(f"{variant} failed (exit {code}): {(tmp / 'stderr.txt').read_text()[-1500:]}")
    doc = json.loads(out.read_text())
    timing = Timing(doc["wall"], doc["cpu"], doc["wall"] - doc["wait"], life)
    return timing, _check(variant, tmp, posts, timing)


def _check(variant: str, tmp: Path, posts_before: int, timing: Timing) -> str:
    """Reads what the profiler says it sampled into ``timing``; returns a problem or ""."""
    if variant.startswith(FLAMEHOUSE_RUN):
        stats = json.loads((tmp / "stats.json").read_text())
        timing.samples, timing.errors = stats["samples_reported"], stats["sampling_errors"]
        if stats.get("samples_acked", 0) <= 0:
            keys = ("samples_reported", "samples_empty", "sampling_errors", "batches_dropped")
            return "no samples acked: " + ", ".join(f"{k}={stats.get(k)}" for k in keys)
    elif variant.startswith("py-spy"):
        found = _PYSPY_SAMPLES.search((tmp / "stderr.txt").read_text(errors="replace"))
        if found:
            timing.samples, timing.errors = int(found.group(1)), int(found.group(2))
        if not (tmp / "pyspy.json").exists():
            return "py-spy wrote no profile"
    elif variant == "pyroscope-io" and _Sink.posts == posts_before:
        return "pyroscope uploaded nothing"
    return ""


def calibrate(seconds: float, tmp: Path, server: Server) -> int:
    """Steps that take about ``seconds`` of job time without a profiler (fastest of two probes)."""
    probe = 300
    per_step = min(run_once(BASELINE, probe, 0, tmp, server=server, sink="")[0].busy / probe for _ in range(2))
    return max(20, int(seconds / per_step))


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    rounds, seconds = (1, 0.1) if args.quick else (args.rounds, args.seconds)
    variants = [v for v in VARIANTS if v != "pyroscope-io" or pyroscope_available()]
    if args.quick:  # proves each kind of variant runs: the extra flamehouse flags take the same path
        variants = [v for v in variants if v in QUICK_VARIANTS]
    # Quick mode: one workload, 20 idle threads.
    workloads = {"(a) CPU loop + 20 idle threads": 20} if args.quick else WORKLOADS
    series = {(w, v): Series() for w in workloads for v in variants}
    with scratch(NAME) as tmp, Server(tmp) as server, http_sink() as sink:
        steps = 150 if args.quick else calibrate(seconds, tmp, server)
        for round_no in range(rounds):
            for workload, idle in workloads.items():
                for variant in rotated(variants, round_no):
                    timing, problem = run_once(variant, steps, idle, tmp, server=server, sink=sink)
                    series[workload, variant].runs.append(timing)
                    if problem:
                        series[workload, variant].problems.append(problem)
    params: dict[str, object] = {
        "rate": f"{RATE} Hz (pyroscope-io: 100 Hz)",
        "rounds": rounds,
        "work": f"{steps} steps, ~{seconds} s without a profiler",
        "pyroscope-io": "installed" if pyroscope_available() else "not importable: row skipped",
    }
    return summarise(series, workloads, variants), params


def summarise(series: dict[tuple[str, str], Series], workloads: dict[str, int], variants: list[str]) -> list[Result]:
    results: list[Result] = []
    for workload in workloads:
        base = series[workload, BASELINE].runs
        for variant in VARIANTS:
            case = f"{workload}: {variant}"
            if variant == BASELINE or (variant not in variants and variant != "pyroscope-io"):
                continue
            if variant not in variants:
                note = "pyroscope-io is not importable here: pip install pyroscope-io to run this row"
                results.append(Result(NAME, case, float("nan"), "x", skipped=True, note=note))
                continue
            runs = series[workload, variant]
            busy = [r.busy / b.busy for r, b in zip(runs.runs, base, strict=True)]
            wall = [r.wall / b.wall for r, b in zip(runs.runs, base, strict=True)]
            cpu = [r.cpu / b.cpu for r, b in zip(runs.runs, base, strict=True)]
            note = f"range {spread(busy)}; raw wall {median(wall):.3f}x ({spread(wall)}); CPU {median(cpu):.3f}x"
            note += _sampling_note(runs.runs)
            if runs.problems:
                note += f"; PROBLEM: {runs.problems[0]}"
            target, met = "", None
            if variant == FLAMEHOUSE_RUN:
                target, met = f"<= {TARGET}", median(busy) <= TARGET and not runs.problems
                noise = _noise_note(series[workload, REPEAT].runs, base)
                if noise and not runs.problems:
                    met = None  # neither met nor missed: the noise floor is wider than the margin
                note += noise
            results.append(Result(NAME, case, median(busy), "x", target, met, note))
    return results


def _noise_note(repeat: list[Timing], base: list[Timing]) -> str:
    """Says so when the none-vs-none spread is wider than the target's margin."""
    floor = [r.busy / b.busy for r, b in zip(repeat, base, strict=True)]
    half = (max(floor) - min(floor)) / 2 if floor else 0.0
    if half <= TARGET - 1:
        return ""
    return f"; NOT RESOLVABLE here: none vs none spans {spread(floor)} (+-{100 * half:.0f}%)"


def _sampling_note(runs: list[Timing]) -> str:
    told = [r for r in runs if r.samples >= 0]
    if not told:
        return ""
    rate = median([r.samples / r.life for r in told])
    failed = median([r.errors / max(1, r.samples + r.errors) for r in told])
    return f"; {rate:.0f} samples/s of job life, {100 * failed:.0f}% failed"


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
        parser.add_argument("--seconds", type=float, default=2.0, help="job work without a profiler (default 2)")

    args = parse_args(__doc__ or NAME, extra)
    results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

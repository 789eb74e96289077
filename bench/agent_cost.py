"""The agent's own cost at 99 Hz: CPU per profiled process and memory, with 1 and 8 targets.

Targets are ``bench/jobs/train_job.py`` processes (a busy main thread with a ~30-frame
stack plus 3 idle threads) running until killed. A real ``flamehouse agent --pid ...``
(default 10 s windows, shipping to a real ``flamehouse server`` subprocess) profiles them.
Once every target has its py-spy child, the CPU time (user + system) of the agent process
and of all its py-spy children (live ones read directly, finished ones through the agent's
``children_*`` times) is read at the start and end of a fixed interval; memory is polled
through the interval. Configurations are interleaved (1, 8, 1, 8, ...) and medians reported.

* CPU: % of one core per profiled process (target <= 2 %), split into agent and py-spy;
* memory: peak RSS of the agent process alone and of the agent with its py-spy children
  (target <= 100 MB with 8 targets), and their PSS (shared pages counted once);
* context: bare ``py-spy record --nonblocking`` on one target at 99 Hz (the floor under
  flamehouse), with ``--gil``, and at 19 Hz.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
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
    scratch,
    spread,
    stop_process,
)

NAME = "agent_cost"
JOB = str(BENCH / "jobs" / "train_job.py")
CPU_TARGET = 2.0  # % of one core per profiled process
RSS_TARGET = 100.0  # MB, agent with 8 targets
MB = 1e6
#: py-spy alone on one target (context: the floor under flamehouse, and what --gil or a lower rate cost).
BARE = {
    "bare py-spy --nonblocking 99 Hz": ["--nonblocking", "--rate", "99"],
    "bare py-spy --nonblocking --gil 99 Hz": ["--nonblocking", "--gil", "--rate", "99"],
    "bare py-spy --nonblocking 19 Hz": ["--nonblocking", "--rate", "19"],
}


@dataclass
class Sample:
    """One measured interval of one configuration."""

    targets: int
    seconds: float
    agent_cpu: float
    pyspy_cpu: float
    agent_rss: float
    tree_rss: float
    tree_pss: float
    samples: int
    errors: int
    #: Seconds from the agent's start to its stop (what the counters cover).
    life: float


def cpu_split(agent: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of (the agent process, its py-spy children: finished and live)."""
    children = agent.children(recursive=True)
    times = agent.cpu_times()
    live = 0.0
    for child in children:
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        live += t.user + t.system
    return times.user + times.system, times.children_user + times.children_system + live


def memory(agent: psutil.Process) -> tuple[float, float, float]:
    """(agent RSS, agent + children RSS, agent + children PSS), bytes."""
    agent_rss, tree_rss, tree_pss = 0.0, 0.0, 0.0
    for proc in [agent, *agent.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        if proc.pid == agent.pid:
            agent_rss = info.rss
        tree_rss += info.rss
        tree_pss += info.pss
    return agent_rss, tree_rss, tree_pss


def measure_once(n: int, interval: float, tmp: Path, server: Server, *, bare: list[str] | None = None) -> Sample:
    """One run with ``n`` targets; ``bare``: py-spy alone with these flags on one target, no agent."""
    targets: list[subprocess.Popen[bytes]] = []
    agent: subprocess.Popen[bytes] | None = None
    stats = tmp / "agent-stats.json"
    stats.unlink(missing_ok=True)
    try:
        for i in range(n):
            job = [PYTHON, JOB, "--steps", str(10**9), "--idle-threads", "3", "--settle", "0"]
            targets.append(subprocess.Popen([*job, "--out", str(tmp / f"target-{i}.json")]))
        pids = [arg for t in targets for arg in ("--pid", str(t.pid))]
        command = [*FLAMEHOUSE, "agent", "--collector", server.grpc, "--gpu", "none", "--stats-file", str(stats)]
        if bare is not None:  # py-spy alone, as flamehouse runs it, without flamehouse
            command = [PYSPY, "record", *bare, "--format", "speedscope", "--output", str(tmp / "bare.json")]
            command += ["--full-filenames", "--pid", str(targets[0].pid)]
            pids = []
        born = time.monotonic()
        with (tmp / "agent.log").open("wb") as log:
            agent = subprocess.Popen([*command, *pids], stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(agent.pid)
        _wait_sampling(proc, 0 if bare is not None else n, settle=min(1.0, interval / 4))
        start_agent, start_pyspy = cpu_split(proc)
        started = time.monotonic()
        peaks = [0.0, 0.0, 0.0]
        while (left := started + interval - time.monotonic()) > 0:
            peaks = [max(p, m) for p, m in zip(peaks, memory(proc), strict=True)]
            time.sleep(min(0.5, left))
        end_agent, end_pyspy = cpu_split(proc)
        seconds = time.monotonic() - started
        if bare is not None:
            agent.send_signal(signal.SIGINT)  # py-spy writes its profile and its counts
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(timeout=30)
        stop_process(agent, timeout=30)
        life = time.monotonic() - born
        if bare is not None:
            found = re.search(r"Samples: (\d+) Errors: (\d+)", (tmp / "agent.log").read_text(errors="replace"))
            doc = {
                "samples_reported": int(found.group(1)) if found else -1,
                "sampling_errors": int(found.group(2)) if found else 0,
            }
        else:
            doc = json.loads(stats.read_text())
        return Sample(
            n,
            seconds,
            end_agent - start_agent,
            end_pyspy - start_pyspy,
            peaks[0],
            peaks[1],
            peaks[2],
            doc["samples_reported"],
            doc["sampling_errors"],
            life,
        )
    finally:
        if agent is not None:
            stop_process(agent)
        for target in targets:
            stop_process(target, timeout=5)


def _errors(runs: list[Sample], n: int) -> str:
    """Samples per second per target and the share py-spy failed to take (over the whole run)."""
    told = [s for s in runs if s.samples >= 0]
    if not told:
        return ""
    rate = median([s.samples / s.life / n for s in told])
    failed = median([s.errors / max(1, s.samples + s.errors) for s in told])
    return f"; {rate:.0f} samples/s per target, {100 * failed:.0f}% failed"


def _wait_sampling(agent: psutil.Process, n: int, *, settle: float, timeout: float = 30.0) -> None:
    """Until the agent runs one py-spy per target (``n`` = 0: already sampling), plus ``settle`` s to attach."""
    deadline = time.monotonic() + timeout
    while len([c for c in agent.children() if c.name().startswith("py-spy")]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent did not start {n} py-spy children within {timeout:.0f}s")
        time.sleep(0.1)
    time.sleep(settle)


def measure(args: argparse.Namespace) -> tuple[list[Result], dict[str, object]]:
    rounds, interval = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    configs = (2,) if args.quick else (1, 8)
    bares = dict(list(BARE.items())[:1]) if args.quick else BARE
    samples: dict[int, list[Sample]] = {n: [] for n in configs}
    bare_samples: dict[str, list[Sample]] = {name: [] for name in bares}
    with scratch(NAME) as tmp, Server(tmp) as server:
        for _ in range(rounds):
            for n in configs:
                samples[n].append(measure_once(n, interval, tmp, server))
            for name, flags in bares.items():
                bare_samples[name].append(measure_once(1, interval, tmp, server, bare=flags))
    results: list[Result] = []
    for name, runs in bare_samples.items():
        cpu_runs = [100 * (s.agent_cpu + s.pyspy_cpu) / s.seconds for s in runs]  # the "agent" is py-spy here
        note = f"context: py-spy alone, no flamehouse; range {spread(cpu_runs)}{_errors(runs, 1)}"
        results.append(Result(NAME, f"{name}, 1 target", median(cpu_runs), "% core", note=note))
    for n in configs:
        runs = samples[n]
        per_proc = [100 * (s.agent_cpu + s.pyspy_cpu) / s.seconds / n for s in runs]
        agent_part = median([100 * s.agent_cpu / s.seconds / n for s in runs])
        pyspy_part = median([100 * s.pyspy_cpu / s.seconds / n for s in runs])
        note = f"agent {agent_part:.2f} + py-spy {pyspy_part:.2f}; range {spread(per_proc)}{_errors(runs, n)}"
        cpu = median(per_proc)
        results.append(
            Result(
                NAME,
                f"CPU per profiled process, {n} target(s)",
                cpu,
                "% core",
                f"<= {CPU_TARGET:g}",
                cpu <= CPU_TARGET,
                note,
            )
        )
        tree = median([s.tree_rss for s in runs]) / MB
        pss = median([s.tree_pss for s in runs]) / MB
        agent_rss = median([s.agent_rss for s in runs]) / MB
        note = f"agent process alone {agent_rss:.0f} MB; PSS of agent + py-spy {pss:.0f} MB"
        target, met = ("", None) if n < 8 else (f"<= {RSS_TARGET:g}", tree <= RSS_TARGET)
        results.append(Result(NAME, f"peak RSS, agent + py-spy, {n} target(s)", tree, "MB", target, met, note))
    params: dict[str, object] = {
        "rate": "99 Hz, --window 10 (defaults)",
        "targets": "train_job.py: busy main thread (~30 frames) + 3 idle threads each",
        "interval": f"{interval:g} s per run, {rounds} round(s) interleaved",
    }
    return results, params


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
        parser.add_argument("--seconds", type=float, default=12.0, help="measured interval per run (default 12)")

    args = parse_args(__doc__ or NAME, extra)
    results, params = measure(args)
    report(NAME, results, args, params)


if __name__ == "__main__":
    main()

"""The whole path with real parts: `flamehouse run` (py-spy) → gRPC → `flamehouse server` (chDB) → HTTP API/CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SCRIPTS, Spawn
from tests.integration.e2e.conftest import FLAMEHOUSE, Server, run_profiled

pytestmark = pytest.mark.integration


def self_shares(functions: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, float]:
    counts = {f["function"]: f["self"] for f in functions if f["function"] in names}
    total = sum(counts.values())
    return {n: counts.get(n, 0) / total for n in names}


def test_known_split_is_stored_and_conserved(server: Server, tmp_path: Path) -> None:
    started = int(time.time()) - 1
    code, stats = run_profiled(server, tmp_path, "split", sys.executable, str(SCRIPTS / "known_split.py"), "6")
    assert code == 0
    assert stats["samples_taken"] > 300
    # every sample py-spy said it took is either stored or counted as empty (no Python frame)
    assert stats["samples_taken"] + stats["samples_empty"] == stats["samples_reported"]
    assert stats["samples_acked"] == stats["samples_taken"] and stats["samples_dropped"] == 0

    status, top = server.get("/api/v1/top", selector='{service="split"}', **{"from": str(started)})
    assert status == 200
    assert top["total_samples"] == stats["samples_taken"]  # stored exactly what the agent took
    shares = self_shares(top["functions"], ("spin_three", "spin_one"))
    print(
        f"FIGURES known split: taken={stats['samples_taken']} stored={top['total_samples']} "
        f"spin_three={shares['spin_three']:.3f} (expected 0.75)"
    )
    assert abs(shares["spin_three"] - 0.75) < 0.08, top["functions"][:4]
    script = next(f for f in top["functions"] if f["function"] == "<module>" and f["file"].endswith("known_split.py"))
    assert script["total"] >= 0.97 * top["total_samples"]  # all but interpreter start-up samples

    status, labels = server.get("/api/v1/labels/suite/values", selector='{service="split"}', **{"from": str(started)})
    assert status == 200 and labels["values"] == ["e2e"]


def test_same_shares_as_plain_pyspy(server: Server, tmp_path: Path, spawn: Spawn) -> None:
    raw = tmp_path / "raw.txt"
    job = spawn(sys.executable, str(SCRIPTS / "known_split.py"), "5")
    time.sleep(0.3)
    pyspy = Path(sys.executable).parent / "py-spy"
    subprocess.run(
        [
            str(pyspy),
            "record",
            "--pid",
            str(job.pid),
            "--format",
            "raw",
            "--nonblocking",
            "--rate",
            "99",
            "--duration",
            "4",
            "--output",
            str(raw),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    job.wait(timeout=30)
    reference: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        reference[stack.split(";")[-1].split(" (")[0]] += int(count)
    ref_share = reference["spin_three"] / (reference["spin_three"] + reference["spin_one"])

    started = int(time.time()) - 1
    code, _ = run_profiled(server, tmp_path, "split-ref", sys.executable, str(SCRIPTS / "known_split.py"), "5")
    assert code == 0
    _, top = server.get("/api/v1/top", selector='{service="split-ref"}', **{"from": str(started)})
    ours = self_shares(top["functions"], ("spin_three", "spin_one"))["spin_three"]
    print(f"FIGURES py-spy raw spin_three={ref_share:.3f} flamehouse={ours:.3f}")
    assert abs(ours - ref_share) < 0.08, (ours, ref_share)


def test_whole_tree_is_profiled_and_exit_code_kept(server: Server, tmp_path: Path) -> None:
    started = int(time.time()) - 1
    code, stats = run_profiled(server, tmp_path, "tree", sys.executable, str(SCRIPTS / "tree_job.py"), "4")
    assert code == 3  # the job's own exit code
    assert stats["targets_started"] >= 3  # parent + a worker started at once + one started 1.5 s later
    status, top = server.get("/api/v1/top", selector='{service="tree"}', **{"from": str(started)})
    names = {f["function"] for f in top["functions"]}
    assert {"parent_work", "early_worker", "late_worker"} <= names, names
    _, pids = server.get("/api/v1/labels/pid/values", selector='{service="tree"}', **{"from": str(started)})
    assert len(pids["values"]) >= 3


def test_sigterm_is_forwarded_and_samples_flushed(server: Server, tmp_path: Path) -> None:
    stats = tmp_path / "sig.json"
    proc = subprocess.Popen(
        [
            *FLAMEHOUSE,
            "run",
            "--collector",
            server.grpc,
            "--service",
            "sig",
            "--window",
            "10",
            "--stats-file",
            str(stats),
            "--",
            sys.executable,
            str(SCRIPTS / "known_split.py"),
            "60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3)
    proc.terminate()
    assert proc.wait(timeout=40) == 128 + 15  # the job died of the forwarded SIGTERM
    counters = json.loads(stats.read_text())
    assert counters["samples_taken"] > 100 and counters["samples_acked"] == counters["samples_taken"]


def test_cli_query_top_prints_a_table(server: Server, tmp_path: Path) -> None:
    run_profiled(server, tmp_path, "cli", sys.executable, str(SCRIPTS / "known_split.py"), "3")
    out = subprocess.run(
        [*FLAMEHOUSE, "query", "top", "--server", server.url, "--selector", '{service="cli"}', "--from", "now-5m"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "spin_three" in out.stdout and "SELF" in out.stdout
    bad = subprocess.run(
        [*FLAMEHOUSE, "query", "top", "--server", server.url, "--selector", '{service="cli"'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "position" in bad.stderr


def test_errors_store_nothing(server: Server, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *FLAMEHOUSE,
            "agent",
            "--collector",
            server.grpc,
            "--pid",
            "4000000",
            "--service",
            "ghost",
            "--stats-file",
            str(tmp_path / "ghost.json"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "4000000" in out.stderr
    code, stats = run_profiled(server, tmp_path, "notpython", "sleep", "2")
    assert code == 0 and stats["samples_taken"] == 0
    status, top = server.get("/api/v1/top", selector='{service=~"ghost|notpython"}', **{"from": "now-10m"})
    assert status == 200 and top["total_samples"] == 0
    status, body = server.get("/api/v1/top", selector='{service="x", }}')
    assert status == 400 and "position" in body["error"]


def test_agent_match_picks_up_new_processes_and_stops_on_sigterm(server: Server, tmp_path: Path, spawn: Spawn) -> None:
    started = int(time.time()) - 1
    first = spawn(sys.executable, str(SCRIPTS / "known_split.py"), "30", "agent-match-marker")
    stats = tmp_path / "agent.json"
    agent = subprocess.Popen(
        [
            *FLAMEHOUSE,
            "agent",
            "--collector",
            server.grpc,
            "--match",
            "agent-match-marker",
            "--service",
            "matched",
            "--window",
            "2",
            "--rescan",
            "0.5",
            "--stats-file",
            str(stats),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.5)
    second = spawn(sys.executable, str(SCRIPTS / "known_split.py"), "30", "agent-match-marker")
    time.sleep(4)
    agent.terminate()
    _, err = agent.communicate(timeout=40)
    assert agent.returncode == 0, err.decode()
    assert first.poll() is None and second.poll() is None  # the agent never touches its targets
    counters = json.loads(stats.read_text())
    assert counters["targets_started"] == 2
    assert counters["samples_acked"] == counters["samples_taken"] > 100
    _, pids = server.get("/api/v1/labels/pid/values", selector='{service="matched"}', **{"from": str(started)})
    assert set(pids["values"]) == {str(first.pid), str(second.pid)}
    _, top = server.get("/api/v1/top", selector='{service="matched"}', **{"from": str(started)})
    assert top["total_samples"] == counters["samples_taken"]

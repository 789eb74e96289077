"""Real `flamehouse run` (py-spy) against a real `flamehouse server` that dies and comes back.

Conservation is checked against the agent's own counters (``--stats-file``): every sample
py-spy took is stored exactly once (``/api/v1/top`` ``total_samples``), across a SIGKILL of
the collector, a 20 s outage, and an agent restart.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.reliability.conftest import ServerProcess, known_split, run_args

pytestmark = pytest.mark.integration


def finish(agent: subprocess.Popen[str], stats: Path) -> dict[str, int]:
    _, err = agent.communicate(timeout=90)
    assert agent.returncode == 0, err[-3000:]
    counters: dict[str, int] = json.loads(stats.read_text())
    return counters


class SpoolWatch:
    """Samples the spool directory's size while an agent runs (largest seen, in bytes and files)."""

    def __init__(self, spool: Path) -> None:
        self.spool, self.peak_bytes, self.peak_files = spool, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            files = [p for p in self.spool.rglob("*.batch")]
            sizes = []
            for p in files:
                try:
                    sizes.append(p.stat().st_size)
                except FileNotFoundError:  # delivered meanwhile
                    pass
            self.peak_bytes = max(self.peak_bytes, sum(sizes))
            self.peak_files = max(self.peak_files, len(sizes))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_collector_sigkill_mid_run_stores_every_sample_once(
    server_process: Callable[..., ServerProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = server_process()
    start_s = srv.start()
    stats = tmp_path / "stats.json"
    agent = subprocess.Popen(
        run_args(srv.grpc, "crash", stats, tmp_path / "spool", *known_split(20)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    srv.kill()  # SIGKILL: in-flight pushes get no ack; some may be stored all the same
    time.sleep(2)
    restart_s = srv.start()  # same data dir, same ports
    counters = finish(agent, stats)

    stored = srv.stored("crash")
    with capsys.disabled():
        print(
            f"\n[sigkill] start_s={start_s:.1f} restart_s={restart_s:.1f} samples_taken={counters['samples_taken']} stored={stored} "
            f"retries={counters['retries']} batches_sent={counters['batches_sent']} "
            f"batches_acked={counters['batches_acked']}"
        )
    assert counters["samples_taken"] > 500
    assert counters["retries"] > 0  # the outage was seen
    assert counters["samples_dropped"] == 0 and counters["samples_left_in_spool"] == 0
    assert counters["samples_acked"] == counters["samples_taken"]
    assert stored == counters["samples_taken"]  # exactly once: nothing lost, no retry counted twice


def test_collector_down_20s_agent_spools_then_delivers(
    server_process: Callable[..., ServerProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue asks for 60 s down; 20 s here keeps CI time bounded and spools just the same
    (memory holds 2 batches, so from the third second of the outage on batches go to disk)."""
    srv = server_process()
    srv.start()
    stats, spool = tmp_path / "stats.json", tmp_path / "spool"
    agent = subprocess.Popen(
        run_args(srv.grpc, "outage", stats, spool, "--max-memory-batches", "2", *known_split(30)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = SpoolWatch(spool)
    time.sleep(3)
    assert srv.stop() == 0  # graceful this time
    time.sleep(20)
    srv.start()
    counters = finish(agent, stats)
    watch.stop()

    stored = srv.stored("outage")
    with capsys.disabled():
        print(
            f"\n[outage 20s] samples_taken={counters['samples_taken']} stored={stored} "
            f"batches_spooled={counters['batches_spooled']} spool_bytes_peak={counters['spool_bytes_peak']} "
            f"spool_dir_peak={watch.peak_files} files/{watch.peak_bytes} bytes retries={counters['retries']}"
        )
    assert counters["batches_spooled"] > 10 and counters["spool_bytes_peak"] > 0 and watch.peak_files > 0
    assert counters["samples_dropped"] == 0 and counters["samples_left_in_spool"] == 0
    assert stored == counters["samples_taken"] == counters["samples_acked"]
    assert list(spool.rglob("*.batch")) == []  # all delivered, nothing left behind


def test_a_restarted_agent_delivers_what_the_previous_one_spooled(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first_stats, second_stats = tmp_path / "first.json", tmp_path / "second.json"
    srv = server_process()  # its ports are chosen; it is not started during the first run
    first = subprocess.Popen(
        run_args(srv.grpc, "restart", first_stats, spool, "--max-memory-batches", "1", *known_split(3)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    before = finish(first, first_stats)
    assert before["samples_taken"] > 100 and before["samples_acked"] == before["samples_dropped"] == 0
    assert before["samples_left_in_spool"] == before["samples_taken"]
    assert list(spool.rglob("*.batch"))

    srv.start()
    second = subprocess.Popen(
        run_args(srv.grpc, "restart-2", second_stats, spool, "--", "sleep", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    after = finish(second, second_stats)
    assert after["samples_recovered"] == after["samples_acked"] == before["samples_taken"]
    assert after["samples_left_in_spool"] == 0 and list(spool.rglob("*.batch")) == []
    assert srv.stored("restart") == before["samples_taken"]

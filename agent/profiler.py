"""The agent's main loop: find targets, sample each in rolling windows, ship.

One sampling thread per target process runs py-spy windows back to back
until the process exits or the agent stops; every window becomes one batch.
Discovery rescans every ``rescan`` seconds so that processes started later
(DataLoader workers, torchrun ranks) are picked up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import psutil

from flamehouse.agent import TargetError
from flamehouse.agent.batch import AgentIdentity, encode, encode_gpu
from flamehouse.agent.gpu import GpuSource
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample, ProcessInfo, Window
from flamehouse.agent.sampler import SamplerConfig, pid_alive, run_window
from flamehouse.agent.shipper import Shipper
from flamehouse.agent.targets import LabelConfig, describe, is_python

log = logging.getLogger(__name__)

#: Finds the candidate processes of one scan (Python or not: the profiler filters).
Discover = Callable[[], list[psutil.Process]]


@dataclass(slots=True)
class SamplingCounters:
    """What the samplers did; ``samples_taken`` is what py-spy took and we parsed."""

    windows: int = 0
    samples_taken: int = 0
    samples_reported: int = 0
    samples_empty: int = 0
    rows: int = 0
    sampling_errors: int = 0
    targets_started: int = 0
    targets_failed: int = 0
    gpu_device_samples: int = 0
    gpu_process_samples: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Profiler:
    """Ties discovery, samplers and the shipper together."""

    def __init__(
        self,
        sampler: SamplerConfig,
        labels: LabelConfig,
        discover: Discover,
        shipper: Shipper,
        identity: AgentIdentity,
        *,
        rescan: float = 2.0,
        gpu: GpuSource | None = None,
    ) -> None:
        self.sampler, self.labels, self.discover = sampler, labels, discover
        self.shipper, self.identity, self.rescan = shipper, identity, rescan
        self.gpu = gpu
        self._gpu_thread: threading.Thread | None = None
        self.counters = SamplingCounters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: dict[tuple[int, int], threading.Thread] = {}
        self._failed: set[tuple[int, int]] = set()

    def scan(self) -> None:
        """One discovery pass: starts a sampler for every new Python process."""
        for proc in self.discover():
            try:
                key = (proc.pid, int(proc.create_time() * 1000))
            except psutil.Error:
                continue
            if key in self._threads or key in self._failed or not is_python(proc):
                continue
            info = describe(proc, self.labels)
            if info is None:
                continue
            thread = threading.Thread(target=self._sample, args=(info, key), name=f"sampler-{proc.pid}", daemon=True)
            self._threads[key] = thread
            with self._lock:
                self.counters.targets_started += 1
            log.info(
                "profiling pid=%d service=%s cmdline=%.120s",
                info.pid,
                info.labels.get("service"),
                info.cmdline,
            )
            thread.start()

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Scans until stopped (or ``until()`` is true): quickly at first, then every ``rescan`` s."""
        next_scan, delay = 0.0, 0.1
        if self.gpu is not None and self._gpu_thread is None:
            self._gpu_thread = threading.Thread(target=self._gpu_loop, args=(self.gpu,), name="gpu", daemon=True)
            self._gpu_thread.start()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                next_scan, delay = now + delay, min(delay * 2, self.rescan)
            if until is not None and until():
                break
            self._stop.wait(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """Ends every window now (py-spy writes what it has) and waits for the samplers."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in [*self._threads.values(), *([self._gpu_thread] if self._gpu_thread else [])]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def active(self) -> int:
        return sum(t.is_alive() for t in self._threads.values())

    def _sample(self, info: ProcessInfo, key: tuple[int, int]) -> None:
        while not self._stop.is_set():
            try:
                window = run_window(self.sampler, info, self._stop)
            except TargetError as err:
                if pid_alive(info.pid) and not self._stop.is_set():
                    log.warning("cannot profile pid=%d: %s", info.pid, err.cause)
                    with self._lock:
                        self.counters.targets_failed += 1
                        self._failed.add(key)
                else:
                    log.info("target exited pid=%d", info.pid)
                return
            self._ship(window)
            if window.note == "target exited" or not pid_alive(info.pid):
                log.info("target exited pid=%d", info.pid)
                return

    def _gpu_loop(self, source: GpuSource) -> None:
        """Polls the GPU source every second; ships what it read once per window and at stop."""
        devices: list[GpuDeviceSample] = []
        processes: list[GpuProcessSample] = []
        next_ship = time.monotonic() + self.sampler.window
        try:
            while True:
                stopping = self._stop.wait(1.0 - time.time() % 1.0 + 0.01)  # just after each second starts
                try:
                    reading = source.poll(time.time())
                except Exception:  # a broken source must not end stack sampling
                    log.exception("GPU source %s failed; no more GPU data", source.name)
                    return
                devices.extend(reading.devices)
                processes.extend(reading.processes)
                if (stopping or time.monotonic() >= next_ship) and (devices or processes):
                    self.shipper.submit(encode_gpu(devices, processes, self.identity))
                    with self._lock:
                        self.counters.gpu_device_samples += len(devices)
                        self.counters.gpu_process_samples += len(processes)
                    devices, processes = [], []
                    next_ship = time.monotonic() + self.sampler.window
                if stopping:
                    return
        finally:
            source.close()

    def _ship(self, window: Window) -> None:
        with self._lock:
            self.counters.windows += 1
            self.counters.samples_taken += window.samples
            self.counters.samples_reported += max(window.reported_samples, 0)
            self.counters.samples_empty += window.empty
            self.counters.rows += len(window.rows)
            self.counters.sampling_errors += window.reported_errors
        if window.reported_samples >= 0 and window.reported_samples != window.samples + window.empty:
            log.warning(
                "sample count mismatch pid=%d py-spy=%d parsed=%d empty=%d",
                window.process.pid,
                window.reported_samples,
                window.samples,
                window.empty,
            )
        if window.rows:
            self.shipper.submit(encode(window.rows, [window.process], self.identity))

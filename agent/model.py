"""The agent's data model: what one sampling window produced.

Every output of the agent (wire batches, counters, logs) is derived from these
plain frozen values only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.Enum):
    """What a sample counts."""

    #: Only threads that were running (py-spy's default): CPU time.
    CPU = "cpu"
    #: Every thread, idle ones included (py-spy ``--idle``): wall-clock time.
    WALL = "wall"


@dataclass(frozen=True, slots=True)
class Frame:
    """One Python frame."""

    #: Function name as py-spy reports it (``<module>`` for module level code).
    function: str
    #: Source file path as seen by the target process.
    file: str
    #: Line being executed (0 when unknown, e.g. native frames).
    line: int


@dataclass(frozen=True, slots=True)
class SampleRow:
    """``count`` samples of one stack of one thread within one second."""

    #: Unix second the samples fell in.
    time: int
    pid: int
    #: OS thread id.
    tid: int
    #: Thread name (``MainThread``, ``pt_autograd_0``, ...), empty when unknown.
    thread: str
    #: Frames root first.
    stack: tuple[Frame, ...]
    kind: Kind
    #: How many py-spy samples; always >= 1.
    count: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A profiled process and its labels."""

    pid: int
    ppid: int
    #: Process start, unix milliseconds; with the pid it identifies the process.
    start_time_ms: int
    cmdline: str
    #: All labels: service, job, rank, thread-independent environment labels, user labels.
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Window:
    """The result of one py-spy run over one process."""

    process: ProcessInfo
    #: Wall-clock bounds of the sampling, unix seconds.
    start: float
    end: float
    rows: tuple[SampleRow, ...]
    #: Samples py-spy said it took (its ``Samples: N`` line), -1 when it did not say.
    reported_samples: int
    #: Sampling errors py-spy reported (``Errors: N``).
    reported_errors: int
    #: Why the window ended early or produced nothing, or "" when it ran normally.
    note: str = ""
    #: Samples py-spy took of a thread with no Python frame (e.g. during interpreter
    #: shutdown): counted, not stored, so ``samples + empty == reported_samples``.
    empty: int = 0

    @property
    def samples(self) -> int:
        return sum(r.count for r in self.rows)


@dataclass(frozen=True, slots=True)
class GpuDeviceSample:
    """One device in one second. Floats the device does not report are ``nan``."""

    #: Unix second.
    time: int
    #: NVML device index on this host.
    index: int
    uuid: str
    name: str
    #: Percent of the second a kernel was running (NVML "gpu" utilisation).
    sm_util: float
    #: Percent of the second device memory was read or written.
    mem_util: float
    mem_used_bytes: int
    mem_total_bytes: int
    power_watts: float
    temperature_c: float
    sm_clock_mhz: float


@dataclass(frozen=True, slots=True)
class GpuProcessSample:
    """One process's use of one device in one second (NVML reports host pids)."""

    time: int
    pid: int
    #: Device index and UUID.
    index: int
    uuid: str
    #: Percent SM utilisation attributed to the process; ``nan`` when NVML had no new sample.
    sm_util: float
    mem_used_bytes: int

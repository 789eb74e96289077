"""parse_speedscope: py-spy's speedscope output → per-second rows, counts conserved."""

from __future__ import annotations

from flamehouse.agent.model import Kind
from flamehouse.agent.sampler import SamplerConfig, parse_speedscope, pyspy_command

DOC = {
    "shared": {
        "frames": [
            {"name": "<module>", "file": "/job/train.py", "line": 40},
            {"name": "step", "file": "/job/train.py", "line": 12},
            {"name": "load", "file": "/job/data.py", "line": 7},
        ]
    },
    "profiles": [
        {"name": 'Thread 101 "MainThread"', "samples": [[0, 1]] * 6 + [[0, 2]] * 2, "weights": [0.01] * 8},
        {"name": 'Thread 102 "loader"', "samples": [[0, 2]] * 4, "weights": [0.01] * 4},
    ],
}


def test_counts_are_conserved_and_split_by_thread_and_second() -> None:
    rows = parse_speedscope(DOC, pid=7, kind=Kind.CPU, start=1000.0, end=1002.0)
    assert sum(r.count for r in rows) == 12
    main = [r for r in rows if r.tid == 101]
    assert {r.thread for r in main} == {"MainThread"}
    # 8 samples spread over [1000, 1002): 4 in each second, in order.
    by_second = {(r.time, r.stack[-1].function): r.count for r in main}
    assert by_second == {(1000, "step"): 4, (1001, "step"): 2, (1001, "load"): 2}
    loader = [r for r in rows if r.tid == 102]
    assert sum(r.count for r in loader) == 4 and {r.time for r in loader} == {1000, 1001}


def test_frames_are_root_first_with_file_and_line() -> None:
    rows = parse_speedscope(DOC, pid=7, kind=Kind.WALL, start=0.0, end=1.0)
    row = next(r for r in rows if r.stack[-1].function == "load")
    assert [f.function for f in row.stack] == ["<module>", "load"]
    assert (row.stack[-1].file, row.stack[-1].line) == ("/job/data.py", 7)
    assert row.kind is Kind.WALL and row.pid == 7


def test_empty_profile_gives_no_rows() -> None:
    assert parse_speedscope({"profiles": [], "shared": {"frames": []}}, pid=1, kind=Kind.CPU, start=0, end=1) == []


def test_command_is_nonblocking_by_default_and_honours_flags() -> None:
    cfg = SamplerConfig(pyspy="/bin/py-spy", rate=50, window=3)
    cmd = pyspy_command(cfg, 42, "/tmp/out.json")  # type: ignore[arg-type]
    assert "--nonblocking" in cmd and "--idle" not in cmd
    assert cmd[cmd.index("--rate") + 1] == "50"
    assert "--duration" not in cmd  # py-spy's duration counts samples; windows end on time
    wall = SamplerConfig(pyspy="/bin/py-spy", blocking=True, idle=True, native=True, gil=True)
    cmd = pyspy_command(wall, 42, "/tmp/out.json")  # type: ignore[arg-type]
    assert "--nonblocking" not in cmd and {"--idle", "--native", "--gil"} <= set(cmd)
    assert wall.kind is Kind.WALL

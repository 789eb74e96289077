"""flamehouse import's readers: py-spy raw / folded and speedscope files into sample rows and batches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.importer import (
    MAX_FRAMES,
    ImportOptions,
    ParsedProfile,
    ProfileFileError,
    parse_frame,
    parse_raw,
    parse_speedscope,
    read_profile,
    to_batches,
)
from flamehouse.agent.model import Frame, Kind
from flamehouse.collector.validate import IngestLimits, validate

SPLIT = "/work/tests/scripts/known_split.py"


def names(profile: ParsedProfile) -> dict[tuple[str, ...], int]:
    return {tuple(f.function for f in s.frames): s.count for s in profile.stacks}


# ------------------------------------------------------------------------------------------- raw


def test_frames_in_py_spy_raw_text() -> None:
    assert parse_frame("spin_three (known_split.py:14)") == Frame("spin_three", "known_split.py", 14)
    assert parse_frame("_find_and_load (<frozen importlib._bootstrap>:1176)") == Frame(
        "_find_and_load", "<frozen importlib._bootstrap>", 1176
    )
    assert parse_frame("<module> (/srv/my job (copy)/train.py:3)") == Frame(
        "<module>", "/srv/my job (copy)/train.py", 3
    )
    assert parse_frame("spin (known_split.py)") == Frame("spin", "known_split.py", 0)  # py-spy --nolineno style
    assert parse_frame("libc.so.6") == Frame("libc.so.6", "", 0)  # flamegraph.pl folded, native frames
    assert parse_frame(r"step (C:\job\train.py:12)") == Frame("step", r"C:\job\train.py", 12)


def test_raw_lines_merge_equal_stacks_and_keep_counts() -> None:
    text = (
        "<module> (known_split.py:33);main (known_split.py:28);spin_three (known_split.py:13) 37\n"
        "<module> (known_split.py:33);main (known_split.py:29);spin_one (known_split.py:21) 28\r\n"
        "\n"
        "<module> (known_split.py:33);main (known_split.py:28);spin_three (known_split.py:13) 3\n"
    )
    parsed = parse_raw(text)
    assert parsed.format == "raw" and parsed.samples == 68 and len(parsed.stacks) == 2
    assert names(parsed)[("<module>", "main", "spin_three")] == 40
    assert parsed.stacks[0].frames[-1] == Frame("spin_three", "known_split.py", 13)
    assert {(s.pid, s.tid, s.thread) for s in parsed.stacks} == {(0, 0, "")}


def test_raw_pseudo_frames_give_pid_cmdline_and_thread() -> None:
    text = (
        'process 20309:"python -c import a; a.run()";thread (20309): MainThread;<module> (a.py:1);run (a.py:5) 25\n'
        "thread (0x7F12);worker (b.py:2) 4\n"
        "thread (77): loader;load (c.py:3) 6\n"
    )
    parsed = parse_raw(text)
    by_thread = {(s.pid, s.tid, s.thread): [f.function for f in s.frames] for s in parsed.stacks}
    assert by_thread == {
        (20309, 20309, "MainThread"): ["<module>", "run"],
        (0, 0x7F12, ""): ["worker"],
        (0, 77, "loader"): ["load"],
    }
    assert parsed.cmdlines == {20309: "python -c import a; a.run()"}  # the ";" inside the cmdline is kept


def test_a_stack_of_only_pseudo_frames_is_skipped_and_counted() -> None:
    parsed = parse_raw('process 5:"x";thread (5) 9\nf (a.py:1) 1\n')
    assert parsed.samples == 1 and parsed.skipped == 9


@pytest.mark.parametrize(
    ("text", "line"),
    [("f (a.py:1);g (a.py:2)\n", 1), ("f (a.py:1) 3\nno count here x\n", 2), ("f (a.py:1) -4\n", 1), (" 12\n", 1)],
)
def test_malformed_raw_lines_name_the_line(text: str, line: int) -> None:
    with pytest.raises(ProfileFileError, match=f"line {line}: expected 'frame;frame;... COUNT'"):
        parse_raw(text)


def test_stacks_deeper_than_the_collector_allows_keep_their_leaf() -> None:
    deep = ";".join(f"f{i} (a.py:{i})" for i in range(MAX_FRAMES + 10))
    parsed = parse_raw(f"{deep} 2\n")
    (stack,) = parsed.stacks
    assert len(stack.frames) == MAX_FRAMES and stack.frames[-1].function == f"f{MAX_FRAMES + 9}"
    assert parsed.stacks_truncated == 1 and parsed.samples == 2


# ------------------------------------------------------------------------------------- speedscope


def speedscope(profiles: list[dict[str, Any]], exporter: str = "someone@1") -> dict[str, Any]:
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": "main", "file": "m.py", "line": 1}, {"name": "hot", "file": "m.py", "line": 9}]},
        "profiles": profiles,
        "exporter": exporter,
    }


def sampled(name: str, unit: str, samples: list[list[int]], weights: list[float]) -> dict[str, Any]:
    return {"type": "sampled", "name": name, "unit": unit, "startValue": 0, "endValue": 1, "samples": samples,
            "weights": weights}  # fmt: skip


def test_py_spy_speedscope_counts_one_sample_each_and_reads_thread_names() -> None:
    doc = speedscope(
        [
            sampled('Process 42 Thread 7 "MainThread"', "seconds", [[0, 1], [0, 1], [0]], [0.01, 0.01, 0.01]),
            sampled('Thread 8 "worker"', "seconds", [[0, 1], []], [0.01, 0.01]),
        ],
        exporter="py-spy@0.4.3",
    )
    parsed = parse_speedscope(doc)
    got = {(s.pid, s.tid, s.thread, tuple(f.function for f in s.frames)): s.count for s in parsed.stacks}
    assert got == {
        (42, 7, "MainThread", ("main", "hot")): 2,
        (42, 7, "MainThread", ("main",)): 1,
        (0, 8, "worker", ("main", "hot")): 1,
    }
    assert parsed.skipped == 1  # the empty stack
    assert parsed.stacks[0].frames[1] == Frame("hot", "m.py", 9)


def test_py_spy_speedscope_pseudo_frames() -> None:
    doc = speedscope([sampled('Thread 5 ""', "seconds", [[2, 3, 0, 1]], [0.01])], exporter="py-spy@0.4.3")
    doc["shared"]["frames"] += [{"name": 'process 5:"python job.py"', "file": "", "line": 0},
                                {"name": "thread (5)", "file": "", "line": 0}]  # fmt: skip
    parsed = parse_speedscope(doc)
    (stack,) = parsed.stacks
    assert (stack.pid, stack.tid, [f.function for f in stack.frames]) == (5, 5, ["main", "hot"])
    assert parsed.cmdlines == {5: "python job.py"}


@pytest.mark.parametrize(("unit", "weight", "count"), [("none", 3, 3), ("seconds", 0.5, 50), ("milliseconds", 250, 25),
                                                       ("microseconds", 20_000, 2), ("nanoseconds", 3e7, 3)])  # fmt: skip
def test_generic_sampled_weights_become_samples(unit: str, weight: float, count: int) -> None:
    parsed = parse_speedscope(speedscope([sampled("only", unit, [[0, 1]], [weight])]), rate=100)
    assert names(parsed) == {("main", "hot"): count}
    assert parsed.stacks[0].thread == ""  # one profile: its name is not a thread


def test_several_generic_profiles_are_threads() -> None:
    doc = speedscope([sampled("MainThread", "none", [[0]], [2]), sampled("loader", "none", [[1]], [5])])
    assert {(s.thread, s.count) for s in parse_speedscope(doc).stacks} == {("MainThread", 2), ("loader", 5)}


def test_evented_profiles_count_time_in_each_stack() -> None:
    events = [
        {"type": "O", "frame": 0, "at": 0.0},
        {"type": "O", "frame": 1, "at": 0.1},
        {"type": "C", "frame": 1, "at": 0.4},
        {"type": "C", "frame": 0, "at": 0.5},
        {"type": "O", "frame": 0, "at": 0.5},
    ]
    profile = {"type": "evented", "name": "e", "unit": "seconds", "startValue": 0, "endValue": 0.7, "events": events}
    parsed = parse_speedscope(speedscope([profile]), rate=100)
    # main alone 0.1 + 0.1 + 0.2 (open until endValue) s, main;hot 0.3 s
    assert names(parsed) == {("main",): 40, ("main", "hot"): 30}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"profiles": "x"}, "expected a JSON object with a 'profiles' list"),
        ({"shared": {}}, "no shared.frames list"),
        ({"profiles": [{"type": "sampled", "unit": "none", "samples": [[5]], "weights": [1]}]},
         r"profiles\[0\].samples\[0\] must be a list of indexes into shared.frames \(0 to 1\)"),
        ({"profiles": [{"type": "sampled", "unit": "none", "samples": [[0]], "weights": []}]}, "equal length"),
        ({"profiles": [{"type": "sampled", "unit": "bytes", "samples": [[0]], "weights": [1]}]},
         r"profiles\[0\].unit is 'bytes'"),
        ({"profiles": [{"type": "flame"}]}, r"profiles\[0\].type is 'flame'"),
        ({"profiles": [{"type": "evented", "unit": "seconds", "events": [
            {"type": "O", "frame": 0, "at": 2}, {"type": "C", "frame": 0, "at": 1}]}]}, "earlier than the event before"),
        ({"profiles": [{"type": "evented", "unit": "seconds", "events": [
            {"type": "O", "frame": 0, "at": 0}, {"type": "C", "frame": 1, "at": 1}]}]}, "close .'C'. the innermost"),
    ],
)  # fmt: skip
def test_malformed_speedscope_files_say_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileFileError, match=message):
        parse_speedscope({**speedscope([]), **change})


# ------------------------------------------------------------------------------------ files, batches


def test_read_profile_detects_the_format_and_gunzips(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt.gz"
    raw.write_bytes(gzip.compress(b"main (m.py:1);hot (m.py:9) 4\n"))
    assert read_profile(raw).format == "raw"
    doc = tmp_path / "profile.json"
    doc.write_text(json.dumps(speedscope([sampled("p", "none", [[0, 1]], [4])])))
    assert read_profile(doc).format == "speedscope" and read_profile(doc).samples == 4
    with pytest.raises(ProfileFileError, match="line 1"):
        read_profile(doc, "raw")
    binary = tmp_path / "cpu.pb.gz"
    binary.write_bytes(gzip.compress(b"\x08\xff\xfe\x00"))
    with pytest.raises(ProfileFileError, match="not UTF-8 text"):
        read_profile(binary)
    with pytest.raises(ProfileFileError, match="No such file"):
        read_profile(tmp_path / "missing.txt")


def test_batches_pass_the_collectors_validation() -> None:
    parsed = parse_raw(
        'process 9:"python job.py";thread (9): MainThread;main (m.py:1);hot (m.py:9) 4\n'
        "main (m.py:1);cold (m.py:20) 2\n"
    )
    options = ImportOptions({"service": "imported", "team": "vision"}, time=1_764_417_600, kind=Kind.WALL,
                            cmdline="flamehouse import p.txt")  # fmt: skip
    batches = to_batches(parsed, options, AgentIdentity("importer-1", "laptop"), max_rows=1)
    assert len(batches) == 2 and len({b.batch_id for b in batches}) == 2
    decoded = [validate(b, IngestLimits(), now=1_764_417_700, ttl_days=14) for b in batches]
    assert sum(d.sample_total for d in decoded) == 6
    procs = {p.pid: p for d in decoded for p in d.processes}
    assert procs[9].cmdline == "python job.py" and procs[0].cmdline == "flamehouse import p.txt"
    assert procs[9].service == "imported" and procs[9].labels == {"team": "vision"} and procs[9].host == "laptop"
    assert {t for d in decoded for t in d.samples.time} == {1_764_417_600}
    assert {k for d in decoded for k in d.samples.kind} == {2}  # wall
    assert {t for d in decoded for t in d.samples.thread} == {"MainThread", ""}


def test_batches_need_a_service() -> None:
    with pytest.raises(ProfileFileError, match="--service"):
        to_batches(parse_raw("f 1\n"), ImportOptions({}, time=1), AgentIdentity("a", "h"))

"""Every export format renders the same hand-made profile faithfully: one contract, parametrized over all."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable

import pytest

from flamehouse.agent.importer import parse_raw
from flamehouse.proto import profile_pb2
from flamehouse.ui.formats import FORMATS, ExportFormat, ExportProfile, get_format
from flamehouse.ui.formats.profile import ExportFrame, ExportStack, frame_label

Names = tuple[tuple[str, str, int], ...]

MAIN = ExportFrame("<module>", "/job/train.py", 40)
STEP = ExportFrame("step", "/job/train.py", 12)
STEP_LATER = ExportFrame("step", "/job/train.py", 15)
MATMUL = ExportFrame("matmul", "/job/ops.py", 7)
LOAD = ExportFrame("load", "/job/data.py", 3)
NATIVE = ExportFrame("libtorch_cpu.so", "", 0)

PROFILE = ExportProfile(
    stacks=(
        ExportStack((MAIN, STEP, MATMUL), "MainThread", 50),
        ExportStack((MAIN, STEP_LATER), "MainThread", 20),
        ExportStack((MAIN, STEP, MATMUL, NATIVE), "MainThread", 7),
        ExportStack((LOAD,), "loader", 13),
    ),
    name='flamehouse cpu {service="trainer"}',
    start=1764417600,
    end=1764421200,
    kind="cpu",
    rate=100.0,
    per_thread=True,
)
MERGED = ExportProfile(PROFILE.stacks, PROFILE.name, PROFILE.start, PROFILE.end, rate=100.0)


def expected(profile: ExportProfile, *, threads: bool) -> Counter[tuple[str, Names]]:
    counts: Counter[tuple[str, Names]] = Counter()
    for s in profile.stacks:
        counts[(s.thread if threads else "", tuple((f.function, f.file, f.line) for f in s.frames))] += s.count
    return counts


def decode_speedscope(data: bytes) -> Counter[tuple[str, Names]]:
    doc = json.loads(data)
    frames = [(f["name"], f.get("file", ""), f.get("line", 0)) for f in doc["shared"]["frames"]]
    several = len(doc["profiles"]) > 1
    counts: Counter[tuple[str, Names]] = Counter()
    for prof in doc["profiles"]:
        assert prof["type"] == "sampled" and prof["unit"] == "none"
        assert len(prof["samples"]) == len(prof["weights"])
        assert prof["endValue"] - prof["startValue"] == sum(prof["weights"])
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            counts[(prof["name"] if several else "", tuple(frames[i] for i in stack))] += weight
    return counts


def decode_pprof(data: bytes) -> Counter[tuple[str, Names]]:
    message = profile_pb2.Profile.FromString(gzip.decompress(data))
    strings = message.string_table
    functions = {f.id: f for f in message.function}
    locations = {loc.id: loc for loc in message.location}
    counts: Counter[tuple[str, Names]] = Counter()
    for sample in message.sample:
        frames = []
        for location_id in reversed(sample.location_id):  # leaf first on the wire
            (line,) = locations[location_id].line
            fn = functions[line.function_id]
            frames.append((strings[fn.name], strings[fn.filename], line.line))
        thread = next((strings[lb.str] for lb in sample.label if strings[lb.key] == "thread"), "")
        counts[(thread, tuple(frames))] += sample.value[0]
    return counts


def decode_folded(data: bytes) -> Counter[tuple[str, Names]]:
    parsed = parse_raw(data.decode("utf-8"))  # flamehouse import's own reader
    counts: Counter[tuple[str, Names]] = Counter()
    for s in parsed.stacks:
        counts[(s.thread, tuple((f.function, f.file, f.line) for f in s.frames))] += s.count
    return counts


DECODERS: dict[str, Callable[[bytes], Counter[tuple[str, Names]]]] = {
    "speedscope": decode_speedscope,
    "pprof": decode_pprof,
    "folded": decode_folded,
}


@pytest.fixture(params=sorted(FORMATS))
def fmt(request: pytest.FixtureRequest) -> ExportFormat:
    return FORMATS[request.param]


def test_every_format_has_a_decoder_here() -> None:
    assert set(FORMATS) == set(DECODERS) == {"speedscope", "pprof", "folded"}


@pytest.mark.parametrize("profile", [MERGED, PROFILE], ids=["merged", "per-thread"])
def test_stacks_and_counts_survive_rendering(fmt: ExportFormat, profile: ExportProfile) -> None:
    decoded = DECODERS[fmt.name](fmt.render(profile))
    assert decoded == expected(profile, threads=profile.per_thread)
    assert sum(decoded.values()) == profile.total_samples == 90


def test_rendering_is_deterministic(fmt: ExportFormat) -> None:
    assert fmt.render(PROFILE) == fmt.render(PROFILE)


def test_an_empty_profile_renders_a_valid_empty_file(fmt: ExportFormat) -> None:
    empty = ExportProfile((), "nothing", 100, 200)
    assert DECODERS[fmt.name](fmt.render(empty)) == Counter()


def test_serving_metadata(fmt: ExportFormat) -> None:
    assert fmt.media_type and "/" in fmt.media_type
    name = fmt.filename(PROFILE)
    assert name == f"flamehouse-cpu-1764417600-1764421200.{fmt.extension}"
    assert get_format(fmt.name) is fmt


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="speedscope, pprof, folded"):
        get_format("svg")


# ---------------------------------------------------------------------------------- format specifics


def test_speedscope_document_follows_the_published_schema() -> None:
    doc = json.loads(get_format("speedscope").render(PROFILE))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert doc["exporter"].startswith("flamehouse@")
    assert doc["name"] == PROFILE.name and doc["activeProfileIndex"] == 0
    assert [p["name"] for p in doc["profiles"]] == ["MainThread", "loader"]  # one per thread, largest first
    assert {"name": "libtorch_cpu.so"} in doc["shared"]["frames"]  # no file, no line: left out
    assert {"name": "step", "file": "/job/train.py", "line": 12} in doc["shared"]["frames"]
    for prof in doc["profiles"]:
        assert set(prof) == {"type", "name", "unit", "startValue", "endValue", "samples", "weights"}


def test_pprof_message_follows_the_specification() -> None:
    message = profile_pb2.Profile.FromString(gzip.decompress(get_format("pprof").render(PROFILE)))
    s = message.string_table
    assert s[0] == ""
    assert [(s[t.type], s[t.unit]) for t in message.sample_type] == [("samples", "count"), ("cpu", "nanoseconds")]
    assert (s[message.period_type.type], s[message.period_type.unit]) == ("cpu", "nanoseconds")
    assert message.period == 10_000_000  # 1e9 / rate
    assert message.time_nanos == PROFILE.start * 10**9 and message.duration_nanos == 3600 * 10**9
    for sample in message.sample:
        assert sample.value[1] == sample.value[0] * 10_000_000  # count * 1e9 / rate
    by_name = {s[f.name]: f for f in message.function}
    assert by_name["step"].start_line == 12  # the smallest line seen (12 and 15)
    assert s[by_name["step"].filename] == "/job/train.py" and s[by_name["step"].system_name] == "step"
    assert by_name["<module>"].system_name == 0  # kept apart from the name so pprof does not cut it as C++
    assert len(message.location) == 6 and len(message.function) == 5
    assert all(loc.id > 0 for loc in message.location) and all(f.id > 0 for f in message.function)


def test_pprof_wall_profiles_say_wall() -> None:
    wall = ExportProfile(MERGED.stacks, "w", 0, 10, kind="wall")
    message = profile_pb2.Profile.FromString(gzip.decompress(get_format("pprof").render(wall)))
    assert message.string_table[message.sample_type[1].type] == "wall"


def test_folded_lines_are_py_spy_raw() -> None:
    text = get_format("folded").render(MERGED).decode()
    assert text.splitlines() == [
        "<module> (/job/train.py:40);step (/job/train.py:12);matmul (/job/ops.py:7) 50",
        "<module> (/job/train.py:40);step (/job/train.py:12);matmul (/job/ops.py:7);libtorch_cpu.so 7",
        "<module> (/job/train.py:40);step (/job/train.py:15) 20",
        "load (/job/data.py:3) 13",
    ]
    per_thread = get_format("folded").render(PROFILE).decode()
    assert "thread (0): loader;load (/job/data.py:3) 13\n" in per_thread


def test_frame_label_leaves_out_what_is_unknown() -> None:
    assert frame_label(ExportFrame("f", "a.py", 3)) == "f (a.py:3)"
    assert frame_label(ExportFrame("f", "a.py", 0)) == "f (a.py)"
    assert frame_label(ExportFrame("f", "", 0)) == "f"

"""Exports read by their real consumers, on data from a real profiled run.

* speedscope's own app (npm ``speedscope``, ``dist/release``) loads the speedscope and pprof
  exports in headless Chromium; its sandwich view shows flamehouse's self counts;
* ``go tool pprof -top`` reads the pprof export; its flat column matches ``/api/v1/top``;
* the folded export goes back in through ``flamehouse import`` unchanged.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.integration.e2e.conftest import FLAMEHOUSE
from tests.integration.exports.conftest import RATE, Recorded, Speedscope, self_by_function

pytestmark = pytest.mark.integration

_UNITS = {"": 1.0, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "mins": 60.0, "h": 3600.0,
          "hrs": 3600.0, "K": 1e3, "M": 1e6}  # fmt: skip
_VALUE = re.compile(r"([0-9.]+)\s*([a-zµ]*|K|M)\b")


def value(text: str) -> float:
    """``3.00s (81%)`` → 3.0, ``666.67ms`` → 0.66667, ``208 (57%)`` → 208."""
    found = _VALUE.match(text)
    assert found, text
    return float(found.group(1)) * _UNITS[found.group(2)]


@pytest.mark.parametrize("fmt", ["speedscope", "pprof"])
def test_export_loads_in_speedscope(recorded: Recorded, speedscope: Speedscope, fmt: str) -> None:
    exported = recorded.export(fmt)
    name = f"profile.{'speedscope.json' if fmt == 'speedscope' else 'pb.gz'}"
    loaded = speedscope.load(exported, name)
    assert not loaded.problems, loaded.problems
    expected_title = f"flamehouse cpu {recorded.selector}" if fmt == "speedscope" else name
    assert loaded.title == f"{expected_title} - speedscope"

    ours = self_by_function(recorded.top())
    total = sum(ours.values())
    shown: dict[str, float] = {}
    for _total, self_text, symbol in loaded.rows:  # a function shows once per line in speedscope's JSON view
        shown[symbol] = shown.get(symbol, 0.0) + value(self_text)
    print(f"speedscope ({fmt}) self: {sorted(shown.items(), key=lambda kv: -kv[1])[:5]}")
    assert {"spin_three", "spin_one"} <= set(shown)
    for symbol, seen in shown.items():
        if fmt == "speedscope":
            assert seen == ours[symbol], (symbol, seen, ours[symbol])  # unit none: exact sample counts
        else:  # pprof: cpu/nanoseconds, shown rounded to 3-4 digits
            assert abs(seen - ours[symbol] / RATE) <= 0.005 * total / RATE + 1e-6, (symbol, seen, ours[symbol])


_TOP_ROW = re.compile(r"^\s*([0-9.]+)([a-zµ]*)\s+([0-9.]+)%\s+([0-9.]+)%\s+([0-9.]+)([a-zµ]*)\s+([0-9.]+)%\s+(.+?)\s*$")


def test_go_tool_pprof_top_matches_flamehouse_top(recorded: Recorded, go_tool: str) -> None:
    exported = recorded.export("pprof")
    done = subprocess.run(
        [go_tool, "tool", "pprof", "-top", "-nodecount=20", str(exported)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(recorded.tmp)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    total_line = re.search(r"Total samples = ([0-9.]+)([a-zµ]*)", done.stdout)
    assert total_line, done.stdout
    top = recorded.top()
    total_seconds = float(total_line.group(1)) * _UNITS[total_line.group(2)]
    assert abs(total_seconds - top["total_samples"] / RATE) <= 0.01 * total_seconds

    rows = [m for line in done.stdout.splitlines() if (m := _TOP_ROW.match(line))]
    flat_share = {m.group(8): float(m.group(3)) / 100 for m in rows}
    ours = self_by_function(top)
    assert list(flat_share)[:2] == ["spin_three", "spin_one"], flat_share
    for function, share in flat_share.items():
        mine = ours.get(function, 0) / top["total_samples"]
        print(f"  {function:<40} go pprof flat {share:7.2%}   flamehouse self {mine:7.2%}")
        assert abs(share - mine) <= 0.01, (function, share, mine)
    for function, count in ours.items():  # nothing flamehouse ranks high is missing from pprof's view
        if count / top["total_samples"] >= 0.01:
            assert function in flat_share, (function, flat_share)


def test_folded_export_round_trips_through_import(recorded: Recorded) -> None:
    exported = recorded.export("folded")
    copy = "exports-split-copy"
    done = subprocess.run(
        [*FLAMEHOUSE, "import", str(exported), "--service", copy, "--label", "origin=folded",
         "--collector", recorded.server.grpc],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"imported {recorded.samples} samples" in done.stdout, done.stdout
    window = {"from": "now-10m", "to": str(int(time.time()) + 60)}
    original, imported = recorded.top(), recorded.top(f'{{service="{copy}"}}', **window)
    assert imported["total_samples"] == original["total_samples"] == recorded.samples
    assert imported["functions"] == original["functions"]  # same functions, files, self and total counts
    status, values = recorded.server.get("/api/v1/labels/origin/values", selector=f'{{service="{copy}"}}', **window)
    assert status == 200 and values["values"] == ["folded"]


def test_per_thread_speedscope_export_round_trips_through_import(recorded: Recorded) -> None:
    exported = recorded.export("speedscope", "--per-thread")
    copy = "exports-split-threads"
    done = subprocess.run(
        [*FLAMEHOUSE, "import", str(exported), "--service", copy, "--collector", recorded.server.grpc],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    window = {"from": "now-10m", "to": str(int(time.time()) + 60)}
    assert recorded.top(f'{{service="{copy}"}}', **window)["functions"] == recorded.top()["functions"]


def test_a_bad_file_is_refused_and_stores_nothing(recorded: Recorded) -> None:
    bad = recorded.tmp / "bad.txt"
    bad.write_text("main (a.py:1) 3\nthis line has no count\n")
    done = subprocess.run(
        [*FLAMEHOUSE, "import", str(bad), "--service", "exports-bad", "--collector", recorded.server.grpc],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "line 2: expected 'frame;frame;... COUNT'" in done.stderr
    _, values = recorded.server.get("/api/v1/labels/service/values", **{"from": "now-1h"})
    assert "exports-bad" not in values["values"]

"""The benchmarks still run: ``bench/run_all.py --quick`` on a copy of BENCHMARKS.md.

Not a timed test: quick mode uses tiny sizes and one round, and no figure is checked
against its target. It checks that every benchmark finishes, reports its rows, and that
the results table is regenerated between the markers without touching the rest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = ("job_slowdown", "agent_cost", "ingest", "queries", "storage", "ui_draw")


def test_every_benchmark_runs_in_quick_mode_and_regenerates_the_table(tmp_path: Path) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# before\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n\n# after\n")

    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--markdown", str(markdown)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = markdown.read_text()
    assert text.startswith("# before\n\n<!-- results:start -->\n")
    assert text.endswith("<!-- results:end -->\n\n# after\n")
    assert "old table" not in text
    table = text.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    for name in BENCHMARKS:
        assert f"| {name} |" in table, f"no row for {name}"
    assert "pending" not in table

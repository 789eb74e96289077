"""`flamehouse import` of files that real py-spy wrote (raw and speedscope), into a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SCRIPTS, Spawn
from tests.integration.e2e.conftest import FLAMEHOUSE
from tests.integration.exports.conftest import Recorded, self_by_function

pytestmark = pytest.mark.integration

PYSPY = Path(sys.executable).parent / "py-spy"


def record(pid: int, fmt: str, out: Path) -> subprocess.Popen[bytes]:
    args = [str(PYSPY), "record", "--pid", str(pid), "--format", fmt, "--nonblocking", "--rate", "99"]
    return subprocess.Popen([*args, "--duration", "3", "--threads", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def raw_leaves(path: Path) -> Counter[str]:
    """Self samples per function, read from the file without flamehouse's parser."""
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaves[stack.split(";")[-1].split(" (")[0]] += int(count)
    return leaves


def speedscope_leaves(path: Path) -> Counter[str]:
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    leaves: Counter[str] = Counter()
    for profile in doc["profiles"]:
        for stack in profile["samples"]:
            if stack and frames[stack[-1]]["file"]:  # a stack with Python frames (not only py-spy's pseudo-frames)
                leaves[frames[stack[-1]]["name"]] += 1
    return leaves


def test_py_spy_files_import_with_exact_counts(recorded: Recorded, spawn: Spawn, tmp_path: Path) -> None:
    job = spawn(sys.executable, str(SCRIPTS / "known_split.py"), "5")
    time.sleep(0.5)
    files = {"raw": tmp_path / "profile.txt", "speedscope": tmp_path / "profile.json"}
    recorders = [record(job.pid, fmt, path) for fmt, path in files.items()]
    for proc in recorders:
        assert proc.wait(timeout=60) == 0
    job.wait(timeout=30)
    expected = {"raw": raw_leaves(files["raw"]), "speedscope": speedscope_leaves(files["speedscope"])}
    for fmt, path in files.items():
        service = f"imported-{fmt}"
        done = subprocess.run(
            [*FLAMEHOUSE, "import", str(path), "--service", service, "--collector", recorded.server.grpc,
             "--time", "now-30s"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"as {fmt}, service={service}" in done.stdout
        top = recorded.top(f'{{service="{service}"}}', **{"from": "now-5m", "to": "now"})
        ours = {name: n for name, n in self_by_function(top).items() if n}
        assert ours == dict(expected[fmt]), fmt
        assert top["total_samples"] == sum(expected[fmt].values()) > 200


def test_import_to_an_unreachable_collector_fails_and_says_so(tmp_path: Path) -> None:
    from tests.integration.e2e.conftest import free_port

    profile = tmp_path / "p.txt"
    profile.write_text("main (a.py:1);hot (a.py:9) 3\n")
    started = time.monotonic()
    done = subprocess.run(
        [*FLAMEHOUSE, "import", str(profile), "--service", "nowhere", "--collector", f"127.0.0.1:{free_port()}",
         "--timeout", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "stored 0 of 3 samples" in done.stderr
    assert time.monotonic() - started < 20

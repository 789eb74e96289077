"""Runs the web UI's JavaScript unit tests (tests/unit/ui/js/*.test.mjs) with `node --test`.

The pages need no Node toolchain; Node is only the test runner for their pure modules
(flame graph model and layout, URL state, selector completion, colours, formatting).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.tools import missing_tool

JS_TESTS = Path(__file__).parent / "js"
STATIC = Path(__file__).resolve().parents[3] / "ui" / "static"


def node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.match(r"v(\d+)", out.strip())
    return int(match.group(1)) if match else 0


def test_js_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None or node_major(node) < 20:
        missing_tool("needs Node.js 20 or newer on PATH to run the UI's JavaScript unit tests")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no JavaScript tests under {JS_TESTS}"
    done = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(r"^# fail 0$", done.stdout, re.M), done.stdout[-3000:]


def test_every_static_module_is_an_es_module_that_parses() -> None:
    node = shutil.which("node")
    if node is None or node_major(node) < 20:
        missing_tool("needs Node.js 20 or newer on PATH")
    modules = sorted(STATIC.rglob("*.js"))
    assert modules
    for module in modules:
        done = subprocess.run(
            [node, "--input-type=module", "--check"],
            input=module.read_text(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{module}: {done.stderr}"


def test_pages_load_nothing_from_other_hosts() -> None:
    for path in [*STATIC.rglob("*.js"), *STATIC.rglob("*.html"), *STATIC.rglob("*.css")]:
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert not re.search(r"""(import|from)\s*\(?\s*["'](https?:)?//""", text), path
        assert not re.search(r"""url\(\s*["']?(https?:)?//""", text), path

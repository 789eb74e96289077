"""Fixtures for the export tests: real profiled data in a real server, and the real consumers.

* ``recorded``: `flamehouse run` over ``known_split.py`` into the end-to-end suite's
  `flamehouse server` (session fixture), with the range it covers;
* ``speedscope``: speedscope's own built app (the npm package's ``dist/release``, installed by
  ``scripts/test.sh`` under ``.cache/npm-speedscope``) served on loopback, opened in Debian's
  Chromium through Playwright;
* ``go_tool``: Debian's ``go`` for ``go tool pprof``.

A consumer that is not installed skips its tests, saying how to install it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SCRIPTS
from tests.integration.e2e.conftest import FLAMEHOUSE, Server, run_profiled, server  # noqa: F401 (session fixture)
from tests.tools import missing_tool

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "exports"
SPEEDSCOPE = Path(
    os.environ.get("FLAMEHOUSE_SPEEDSCOPE_DIR", ROOT / ".cache/npm-speedscope/node_modules/speedscope/dist/release")
)
RATE = 99.0


@dataclass
class Recorded:
    """A profiled run of known_split.py stored in ``server``."""

    server: Server
    service: str
    start: int
    end: int
    samples: int
    tmp: Path

    @property
    def selector(self) -> str:
        return f'{{service="{self.service}"}}'

    def top(self, selector: str | None = None, **params: str) -> dict[str, Any]:
        window = {"from": str(self.start), "to": str(self.end)}
        status, body = self.server.get(
            "/api/v1/top", selector=selector or self.selector, limit="1000", **window | params
        )
        assert status == 200, body
        return body

    def export(self, fmt: str, *extra: str) -> Path:
        """The selection exported with the real CLI (`flamehouse query export`)."""
        suffix = {"pprof": "pb.gz", "speedscope": "speedscope.json"}.get(fmt, fmt)
        out = self.tmp / f"profile{'-'.join(extra)}.{suffix}"
        done = subprocess.run(
            [*FLAMEHOUSE, "query", "export", "--server", self.server.url, "--format", fmt, "-o", str(out),
             "--selector", self.selector, "--from", str(self.start), "--to", str(self.end), *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return out


def self_by_function(top: dict[str, Any]) -> dict[str, int]:
    """Self samples per function name (files merged, as the consumers show names)."""
    counts: dict[str, int] = {}
    for row in top["functions"]:
        counts[row["function"]] = counts.get(row["function"], 0) + row["self"]
    return counts


@pytest.fixture(scope="session")
def recorded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Recorded:  # noqa: F811
    tmp = tmp_path_factory.mktemp("exports")
    start = int(time.time()) - 1
    code, stats = run_profiled(server, tmp, "exports-split", sys.executable, str(SCRIPTS / "known_split.py"), "5")
    assert code == 0 and stats["samples_acked"] > 300, stats
    return Recorded(server, "exports-split", start, int(time.time()) + 2, stats["samples_acked"], tmp)


@pytest.fixture(scope="session")
def go_tool() -> str:
    go = shutil.which("go")
    if go is None:
        missing_tool("go is not installed: `apt-get install golang-go` (scripts/test.sh does it)")
    return go


# --------------------------------------------------------------------------------------- speedscope


@dataclass
class Loaded:
    """What speedscope showed after loading one file."""

    title: str
    #: The sandwich view's rows: (total text, self text, symbol name), self descending.
    rows: list[tuple[str, str, str]]
    problems: list[str] = field(default_factory=list)


class Speedscope:
    """speedscope's built app and the files to open, served from one loopback HTTP server."""

    def __init__(self, root: Path, browser: Any) -> None:
        self.root = root
        self.browser = browser
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="speedscope-http", daemon=True).start()

    def load(self, profile: Path, name: str) -> Loaded:
        """Opens ``#profileURL=`` pointing at a copy of ``profile`` named ``name``; reads the sandwich table."""
        shutil.copy(profile, self.root / name)
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        base = f"http://127.0.0.1:{self.port}"
        try:
            page.goto(f"{base}/index.html#profileURL={base}/{name}")
            page.get_by_text("Sandwich").first.wait_for(timeout=20_000)
            page.wait_for_selector("canvas", timeout=20_000)
            title = page.title()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{name}.flame.png"))
            page.get_by_text("Sandwich").first.click()
            page.get_by_text("Symbol Name").first.wait_for(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / f"{name}.sandwich.png"))
            text = page.inner_text("body")
        finally:
            page.close()
        return Loaded(title, _sandwich_rows(text), problems)

    def warm_up(self) -> None:
        """Opens the app once, so the browser's long-lived helper processes (network, storage)
        start inside this session fixture rather than in a test, whose leak check would flag them."""
        page = self.browser.new_page()
        try:
            page.goto(f"http://127.0.0.1:{self.port}/index.html")
            page.get_by_text("Browse").first.wait_for(timeout=20_000)
        finally:
            page.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _sandwich_rows(text: str) -> list[tuple[str, str, str]]:
    lines = [line.strip() for line in text.split("Symbol Name", 1)[-1].splitlines() if line.strip()]
    rows = []
    for i in range(0, len(lines) - 2, 3):
        total, self_, name = lines[i : i + 3]
        if not re.match(r"[\d.]", total):
            break
        rows.append((total, self_, name))
    return rows


@pytest.fixture(scope="session")
def speedscope(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Speedscope]:
    if not (SPEEDSCOPE / "index.html").is_file():
        missing_tool(f"speedscope is not installed at {SPEEDSCOPE}: `npm install --prefix .cache/npm-speedscope "
                    "speedscope` (scripts/test.sh does it)")  # fmt: skip
    root = tmp_path_factory.mktemp("speedscope")
    shutil.copytree(SPEEDSCOPE, root, dirs_exist_ok=True)
    app = Speedscope(root, browser)  # the session's one Chromium (tests/conftest.py)
    try:
        app.warm_up()
        yield app
    finally:
        app.close()

"""Fixtures for the web UI tests: real profiled data in a real server, driven in Debian's Chromium.

The server is the end-to-end suite's session fixture (`flamehouse server` on loopback ports);
`profiled` fills it once with `flamehouse run` over a CPU workload with a known split and a
training-like job whose GPU use is replayed. Each test gets a fresh page whose console errors,
page errors and requests to other hosts fail the test at teardown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SCRIPTS
from tests.integration.e2e.conftest import FLAMEHOUSE, Server, server  # noqa: F401 (session fixture)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SPLIT = '{service="ui-split"}'
PHASES = '{service="ui-phases"}'


@dataclass
class Profiled:
    """What `profiled` stored: services, and the API's paths (to skip views it lacks)."""

    server: Server
    paths: dict[str, set[str]]

    def has(self, path: str, param: str | None = None) -> bool:
        return path in self.paths and (param is None or param in self.paths[path])


def _run(srv: Server, tmp: Path, service: str, *cmd: str, gpu: str | None = None) -> subprocess.Popen[bytes]:
    args = [*FLAMEHOUSE, "run", "--collector", srv.grpc, "--service", service, "--window", "1"]
    if gpu:
        args += ["--gpu", gpu]
    args += ["--stats-file", str(tmp / f"{service}.json"), "--", *cmd]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="session")
def profiled(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Profiled:  # noqa: F811
    tmp = tmp_path_factory.mktemp("ui-data")
    replay = tmp / "gpu.jsonl"
    jobs = [
        _run(server, tmp, "ui-split", sys.executable, str(SCRIPTS / "known_split.py"), "5"),
        _run(
            server, tmp, "ui-phases", sys.executable, str(SCRIPTS / "gpu_phases.py"), str(replay), "6",
            gpu=f"replay:{replay}",
        ),
    ]  # fmt: skip
    for job in jobs:
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err.decode()
    for service in ("ui-split", "ui-phases"):
        stats = json.loads((tmp / f"{service}.json").read_text())
        assert stats["samples_acked"] > 100, stats
    with urllib.request.urlopen(f"{server.url}/openapi.json", timeout=30) as resp:
        schema = json.loads(resp.read())
    paths = {
        path: {p["name"] for p in item.get("get", {}).get("parameters", [])}
        for path, item in schema["paths"].items()
        if "get" in item
    }
    return Profiled(server, paths)


@dataclass
class Ui:
    """A page on the server plus what it reported: console errors, page errors, outside requests."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.base}/{query}")

    def wait_view(self, view: str, status: str = "ready", timeout: float = 20_000) -> None:
        """Waits until a view (or `timeline`) has finished loading with `status`."""
        css = "#timeline" if view == "timeline" else f"#view-{view}"
        self.page.wait_for_function(
            "([css, status]) => { const el = document.querySelector(css);"
            " return el && !el.hidden && el.dataset.status === status; }",
            arg=[css, status],
            timeout=timeout,
        )

    def shot(self, name: str) -> Path:
        """Saves a full-page screenshot once the timeline (when shown) has loaded."""
        self.page.wait_for_function(
            "() => { const t = document.querySelector('#timeline');"
            " return !t || t.hidden || (t.dataset.status && t.dataset.status !== 'loading'); }"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def painted(self, canvas_css: str) -> dict[str, int]:
        """Pixels of a canvas that are not its white background, and all pixels."""
        return dict(
            self.page.evaluate(
                """(css) => {
                    const c = document.querySelector(css);
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let painted = 0;
                    for (let i = 0; i < d.length; i += 4) {
                        if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) painted += 1;
                    }
                    return {painted, total: d.length / 4};
                }""",
                canvas_css,
            )
        )

    def pixel(self, canvas_css: str, x: float, y: float) -> list[int]:
        """The RGB of a canvas at page coordinates (x, y)."""
        return list(
            self.page.evaluate(
                """([css, x, y]) => {
                    const c = document.querySelector(css);
                    const r = c.getBoundingClientRect();
                    const k = c.width / r.width;
                    const d = c.getContext('2d').getImageData(Math.floor((x - r.left) * k), Math.floor((y - r.top) * k), 1, 1).data;
                    return [d[0], d[1], d[2]];
                }""",
                [canvas_css, x, y],
            )
        )

    def click_frame(self, name: str) -> None:
        """Scrolls the frame `name` into view and clicks its middle."""
        rect = self.frame(name)
        assert rect, f"{name} not drawn"
        self.page.evaluate("(y) => window.scrollBy(0, y)", rect["y"] - 300)
        rect = self.frame(name)
        assert rect
        self.page.mouse.click(rect["x"] + rect["w"] / 2, rect["y"] + rect["h"] / 2)

    def frame(self, name: str) -> dict[str, float] | None:
        """Page rectangle of the widest visible flame graph frame called `name`."""
        rect = self.page.evaluate("(n) => window.flamehouse.views.flame.frameRectByName(n)", name)
        return dict(rect) if rect else None


@pytest.fixture
def ui(browser: Any, profiled: Profiled) -> Iterator[Ui]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    view = Ui(page, profiled.server.url)
    page.on("console", lambda m: view.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: view.errors.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: None if r.url.startswith((view.base, "data:")) else view.outside.append(r.url),
    )
    yield view
    context.close()
    assert not view.errors, view.errors
    assert not view.outside, f"requests outside the server: {view.outside}"


def wait_url(ui: Ui, predicate: str, timeout: float = 10_000) -> None:
    """Waits until `predicate` (JS over `p`, the URL's URLSearchParams) holds."""
    ui.page.wait_for_function(
        f"() => {{ const p = new URLSearchParams(location.search); return {predicate}; }}", timeout=timeout
    )


def now() -> int:
    return int(time.time())

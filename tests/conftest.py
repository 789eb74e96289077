"""Shared fixtures: real child processes that never outlive a test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.tools import missing_tool

SCRIPTS = Path(__file__).parent / "scripts"
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts a process; kills it and its whole tree after the test, and fails on leaks."""
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(args), **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            family = []
        for member in family:
            try:
                member.kill()
            except psutil.Error:
                pass
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Every child a test starts (py-spy included) must be gone when it ends.

    Children of processes that outlive tests on purpose (session fixtures: the server,
    Chromium) are theirs to manage and are not counted.
    """
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=False)}
    yield
    deadline = time.monotonic() + 5
    leaked: list[psutil.Process] = []
    while time.monotonic() < deadline:
        leaked = [p for p in _started_by_test(me, before) if _alive(p)]
        if not leaked:
            return
        time.sleep(0.1)
    for p in leaked:
        p.kill()
    pytest.fail(f"test leaked processes: {[(p.pid, _cmd(p)) for p in leaked]}")


def _started_by_test(me: psutil.Process, before: set[int]) -> list[psutil.Process]:
    """New direct children of the test process, and their descendants."""
    found: list[psutil.Process] = []
    for child in me.children(recursive=False):
        if child.pid in before:
            continue
        found.append(child)
        try:
            found.extend(child.children(recursive=True))
        except psutil.Error:
            pass
    return found


CHROMIUM = Path("/usr/bin/chromium")
#: Debian's Chromium as root in a sandbox without network: the flags this machine needs.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (Playwright's sync API allows one per thread)."""
    if not CHROMIUM.exists():
        missing_tool("needs Debian's chromium at /usr/bin/chromium (scripts/test.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extra)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:100]
    except psutil.Error:
        return "?"


def python_script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *args]

"""Dependency direction (STYLE.md): agent → proto only; ui → collector (and pprof's message); nothing imports
agent or ui."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = {n for n in names if n.startswith("flamehouse")}
    return found


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("agent", ("flamehouse.agent", "flamehouse.proto")),
        ("collector", ("flamehouse.collector", "flamehouse.proto")),
        # the pprof export writes pprof's own message (generated beside the wire code), not the wire format
        ("ui", ("flamehouse.ui", "flamehouse.collector", "flamehouse.proto.profile_pb2")),
        ("proto", ("flamehouse.proto",)),
    ],
)
def test_component_imports_only_what_it_may(package: str, allowed: tuple[str, ...]) -> None:
    for path, names in imports_of(package).items():
        bad = {n for n in names if n != "flamehouse" and not n.startswith(allowed)}
        assert not bad, f"{path} imports {sorted(bad)}"


def test_the_agent_commands_do_not_load_the_server() -> None:
    """``flamehouse agent|run`` share a CLI with the server but not its modules: the engine's client,
    numpy and the ingest path would add ~12 MB to every agent (RSS budget: BENCHMARKS.md, agent cost)."""
    code = (
        "import sys, flamehouse.cli, flamehouse.commands; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'chdb', 'clickhouse_connect') "
        "or m in ('flamehouse.serve', 'flamehouse.collector.ingest', 'flamehouse.collector.validate')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"

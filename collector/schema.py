"""Versioned, idempotent schema migrations.

Migrations are the numbered files in ``migrations/`` (``001_init.sql``, ...).
Applied versions are recorded in ``schema_migrations``; on start every missing
one is applied in order. Each file is a list of statements separated by lines
holding only ``;``, with ``{db}``, ``{ttl_days}`` and ``{rollup_ttl_days}``
substituted (all validated by :class:`~flamehouse.collector.store.Store`, never
user input).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from flamehouse.collector.cluster import cluster_statements
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
#: Where applied versions are recorded (created before the numbered migrations run).
SCHEMA_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
    "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
    "ENGINE = ReplacingMergeTree ORDER BY version"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("flamehouse.collector").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        statements = tuple(s.strip() for s in re.split(r"^;\s*$", text, flags=re.M) if _has_sql(s))
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.version)
    return found


def _has_sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def statements_for(statement: str, cluster: str | None) -> list[str]:
    """One migration statement as it runs: itself, or its ``ON CLUSTER`` form (see collector.cluster)."""
    return cluster_statements(statement, cluster) if cluster else [statement]


def migrate(store: Store, cluster: str | None = None) -> list[int]:
    """Applies every migration not yet recorded; returns the versions applied now.

    With ``cluster`` every statement is rewritten by :func:`cluster_statements` (replicated
    ``*_local`` tables plus Distributed tables under the plain names), from the same files.
    """
    db = store.db

    def run(template: str) -> None:
        for statement in statements_for(template, cluster):
            store.command(_substitute(statement, store))

    run("CREATE DATABASE IF NOT EXISTS {db}")
    run(SCHEMA_MIGRATIONS_TABLE)
    done = {row[0] for row in store.query(f"SELECT version FROM {db}.schema_migrations")}
    applied: list[int] = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements:
            run(statement)
        store.insert("schema_migrations", ["version", "name"], [[migration.version], [migration.name]])
        log.info("schema migrated version=%d name=%s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def _substitute(statement: str, store: Store) -> str:
    """``statement`` with the database name and the retentions (days) filled in."""
    values = {"db": store.db, "ttl_days": store.config.ttl_days, "rollup_ttl_days": store.config.rollup_ttl_days}
    for name, value in values.items():
        statement = statement.replace("{" + name + "}", str(value))
    return statement

"""Cluster DDL: the single-node migration statements rewritten for a ClickHouse cluster.

There is one schema definition, ``migrations/NNN_*.sql``. With ``--cluster NAME`` every
statement goes through :func:`cluster_statements` before it runs:

* ``CREATE TABLE {db}.T (...) ENGINE = <Variant>MergeTree[(args)] ...`` becomes

  - ``{db}.T_local ON CLUSTER NAME`` with ``Replicated<Variant>MergeTree(
    '/clickhouse/tables/{shard}/{database}/{table}', '{replica}'[, args])``
    (a Replacing/Summing/... variant keeps its version or column arguments), and
  - ``{db}.T ON CLUSTER NAME AS {db}.T_local ENGINE = Distributed(NAME, {db}, T_local, KEY)``.

  Queries keep reading ``{db}.T``, now the Distributed table, so the query layer does not change.
* ``CREATE MATERIALIZED VIEW {db}.V TO {db}.T AS SELECT ... FROM {db}.S`` becomes a view
  ``ON CLUSTER`` from ``S_local`` into ``T_local``: each shard rolls up its own rows.
* ``ALTER TABLE {db}.T ...`` runs ``ON CLUSTER`` on ``T_local`` and, for column changes, on ``T``.
* ``INSERT INTO {db}.T SELECT ...`` (a backfill) runs as written, through the Distributed tables
  (it needs ``distributed_product_mode = 'global'`` when it has subqueries, as the read queries do).
* ``DROP TABLE {db}.T`` drops both. Anything else raises :class:`ClusterError`, so a new kind of
  migration statement fails the cluster DDL test instead of being applied on one node only.

Sharding keys (:data:`SHARDING_KEYS`): ``samples`` and ``processes`` by
``cityHash64(service, job, host)`` so one job's rows on one host stay on one shard (a retried
batch lands where its first attempt did, so insert deduplication still works); ``stacks`` and
``frames`` by their id; GPU tables by ``cityHash64(host)``; any other table by ``rand()``.
"""

from __future__ import annotations

import re

from flamehouse.collector import CollectorError

#: ZooKeeper/Keeper path of every replicated table; ClickHouse fills the macros per replica.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
#: Suffix of the per-shard tables; the Distributed tables keep the plain names.
LOCAL_SUFFIX = "_local"
DEFAULT_SHARDING_KEY = "rand()"
SHARDING_KEYS: dict[str, str] = {
    "samples": "cityHash64(service, job, host)",
    "processes": "cityHash64(service, job, host)",
    "stacks": "stack_id",
    "frames": "frame_id",
    "gpu_devices": "cityHash64(host)",
    "gpu_processes": "cityHash64(host)",
    "schema_migrations": "version",
}

_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_TABLE_REF = re.compile(r"\{db\}\.([A-Za-z_][A-Za-z0-9_]*)")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)\s*", re.I)
_CREATE_MV = re.compile(
    r"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)\s+TO\s+\{db\}\.(\w+)\s+", re.I
)
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+\{db\}\.(\w+)\s+", re.I)
_DROP = re.compile(r"^\s*DROP\s+TABLE\s+(IF\s+EXISTS\s+)?\{db\}\.(\w+)\s*$", re.I)
_INSERT_SELECT = re.compile(r"^\s*INSERT\s+INTO\s+\{db\}\.\w+\s+(\([^)]*\)\s*)?SELECT\b", re.I)
_CREATE_DB = re.compile(r"^\s*CREATE\s+DATABASE\s+(IF\s+NOT\s+EXISTS\s+)?\{db\}\s*$", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w*)MergeTree\b", re.I)
_COLUMN_ALTER = re.compile(r"^\s*(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)


class ClusterError(CollectorError):
    """A migration statement the cluster transform does not know how to distribute, or a bad name."""


def check_cluster_name(name: str) -> str:
    """``name`` when it is a plain ClickHouse cluster name, else ClusterError saying what to fix."""
    if not _CLUSTER_NAME.match(name):
        raise ClusterError(f"cluster name {name!r} must match {_CLUSTER_NAME.pattern}")
    return name


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The cluster form of one migration statement (``{db}`` and other placeholders left in)."""
    check_cluster_name(cluster)
    body = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--")).strip()
    if match := _CREATE_DB.match(body):
        return [f"CREATE DATABASE {match.group(1) or ''}{{db}} ON CLUSTER {cluster}"]
    if match := _CREATE_TABLE.match(body):
        return _create_table(body, match, cluster)
    if match := _CREATE_MV.match(body):
        return _create_view(body, match, cluster)
    if match := _ALTER.match(body):
        return _alter(body, match, cluster)
    if _INSERT_SELECT.match(body):  # a backfill: reads and writes the Distributed tables as written
        return [statement]
    if match := _DROP.match(body):
        exists, table = match.group(1) or "", match.group(2)
        return [f"DROP TABLE {exists}{{db}}.{name} ON CLUSTER {cluster} SYNC" for name in (table, local_name(table))]
    first = " ".join(body.split())[:80]
    raise ClusterError(f"no cluster form for statement {first!r}: teach flamehouse/collector/cluster.py")


def _create_table(body: str, match: re.Match[str], cluster: str) -> list[str]:
    exists, table = match.group(1) or "", match.group(2)
    rest = body[match.end() :]
    engine = _ENGINE.search(rest)
    if engine is None:
        raise ClusterError(f"table {table}: only *MergeTree tables can be distributed")
    variant = engine.group(1)
    args, after = _engine_args(rest, engine.end())
    replicated_args = ", ".join([f"'{REPLICA_PATH}'", f"'{REPLICA_NAME}'", *([args] if args.strip() else [])])
    rest = f"{rest[: engine.start()]}ENGINE = Replicated{variant}MergeTree({replicated_args}){after}"
    # Replicated tables deduplicate inserts by themselves; the non-replicated window does not apply.
    rest = re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", rest)
    local = local_name(table)
    key = SHARDING_KEYS.get(table, DEFAULT_SHARDING_KEY)
    return [
        f"CREATE TABLE {exists}{{db}}.{local} ON CLUSTER {cluster}\n{rest}",
        f"CREATE TABLE {exists}{{db}}.{table} ON CLUSTER {cluster} AS {{db}}.{local}\n"
        f"ENGINE = Distributed({cluster}, {{db}}, {local}, {key})",
    ]


def _engine_args(text: str, pos: int) -> tuple[str, str]:
    """(the engine's argument text, the text after its closing parenthesis) from just after its name."""
    stripped = text[pos:].lstrip()
    if not stripped.startswith("("):
        return "", text[pos:]
    start = len(text) - len(stripped)
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], text[i + 1 :]
    raise ClusterError("unbalanced parentheses in an ENGINE clause")


def _create_view(body: str, match: re.Match[str], cluster: str) -> list[str]:
    exists, view, target = match.group(1) or "", match.group(2), match.group(3)
    select = _TABLE_REF.sub(lambda m: f"{{db}}.{local_name(m.group(1))}", body[match.end() :])
    return [
        f"CREATE MATERIALIZED VIEW {exists}{{db}}.{view} ON CLUSTER {cluster} TO {{db}}.{local_name(target)} {select}"
    ]


def _alter(body: str, match: re.Match[str], cluster: str) -> list[str]:
    table, action = match.group(1), body[match.end() :]
    statements = [f"ALTER TABLE {{db}}.{local_name(table)} ON CLUSTER {cluster} {action}"]
    if _COLUMN_ALTER.match(action):  # the Distributed table mirrors the columns, nothing else
        statements.append(f"ALTER TABLE {{db}}.{table} ON CLUSTER {cluster} {action}")
    return statements

"""Diff of two selections: a merged call tree and the functions whose share changed most.

Each side is a selector and a time range (plus the shared ``kind`` and
``gpu_state``), e.g. one job before and after a change, or rank 0 against
rank 1. As in Pyroscope's and Parca's diff views, the two sides are compared
by **share**, each normalised to its own total, so a longer or busier side
does not look slower everywhere:

* ``root``: the union of both sides' call trees merged per function path,
  each node carrying both sides' ``self`` and ``total`` samples (a path seen on
  one side only has zeros on the other); at most ``max_nodes`` nodes, the
  largest by ``max(base share, comparison share)``, so the set stays
  prefix-closed;
* ``changes``: per function, its self share on each side
  (``self / side total``) and ``delta = comparison_share - base_share``,
  sorted by ``|delta|``, largest first.

Everything is aggregated in ClickHouse, in three queries over one ``sides``
CTE (side totals; tree nodes; per-function self): each side's ``counts`` is
the same SQL a flame graph of that side runs (:func:`.rollup.counts_ctes`,
raw seconds or the per-minute rollup), nested in its own subquery with its
parameters renamed (``b_…``, ``c_…``, :func:`rebind`) so the two never clash.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, TypedDict

from flamehouse.collector.filters import SampleFilter
from flamehouse.collector.flame import MAX_FLAME_DEPTH, names_sql, stacks_sql
from flamehouse.collector.rollup import Plan, counts_ctes, query_params
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

#: Functions listed in ``changes`` unless asked otherwise.
DEFAULT_CHANGES = 100

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):")


class DiffNodeJSON(TypedDict):
    name: str
    file: str
    base_self: int
    base_total: int
    comparison_self: int
    comparison_total: int
    children: list[DiffNodeJSON]


class ChangeJSON(TypedDict):
    function: str
    file: str
    base_self: int
    comparison_self: int
    base_share: float
    comparison_share: float
    delta: float


class DiffJSON(TypedDict):
    base_total: int
    comparison_total: int
    truncated: bool
    source: dict[str, str]
    root: DiffNodeJSON
    changes: list[ChangeJSON]


@dataclass(frozen=True, slots=True)
class DiffNode:
    """One function path prefix with both sides' samples; children by larger share first."""

    name: str
    file: str
    base_self: int
    base_total: int
    comparison_self: int
    comparison_total: int
    children: tuple[DiffNode, ...] = ()

    def to_json(self) -> DiffNodeJSON:
        return {
            "name": self.name,
            "file": self.file,
            "base_self": self.base_self,
            "base_total": self.base_total,
            "comparison_self": self.comparison_self,
            "comparison_total": self.comparison_total,
            "children": [c.to_json() for c in self.children],
        }


@dataclass(frozen=True, slots=True)
class FunctionChange:
    """A function's self share on each side (self samples / that side's total)."""

    function: str
    file: str
    base_self: int
    comparison_self: int
    base_share: float
    comparison_share: float

    @property
    def delta(self) -> float:
        return self.comparison_share - self.base_share

    def to_json(self) -> ChangeJSON:
        return {
            "function": self.function,
            "file": self.file,
            "base_self": self.base_self,
            "comparison_self": self.comparison_self,
            "base_share": self.base_share,
            "comparison_share": self.comparison_share,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class DiffResult:
    """The merged tree and the largest share changes."""

    base_total: int
    comparison_total: int
    root: DiffNode
    changes: tuple[FunctionChange, ...]
    truncated: bool = False
    #: The table that answered each side (``samples`` or ``samples_1m``).
    sources: tuple[str, str] = ("samples", "samples")

    def to_json(self) -> DiffJSON:
        return {
            "base_total": self.base_total,
            "comparison_total": self.comparison_total,
            "truncated": self.truncated,
            "source": {"base": self.sources[0], "comparison": self.sources[1]},
            "root": self.root.to_json(),
            "changes": [c.to_json() for c in self.changes],
        }


def rebind(sql: str, params: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """``sql`` and ``params`` with every ``{name:Type}`` placeholder renamed ``{prefix}name``.

    Only for SQL this package generates, whose only braces are placeholders.
    """
    return _PLACEHOLDER.sub(lambda m: "{" + prefix + m.group(1) + ":", sql), {prefix + k: v for k, v in params.items()}


def sides_ctes(
    db: str, base: tuple[SampleFilter, Plan], comparison: tuple[SampleFilter, Plan]
) -> tuple[str, dict[str, Any]]:
    """CTEs ``sides (side, stack_id, n)`` (side 0 = base, 1 = comparison) and ``stack_ids``, with parameters."""
    selects: list[str] = []
    params: dict[str, Any] = {}
    for side, prefix, (where, plan) in ((0, "b_", base), (1, "c_", comparison)):
        sql, bound = rebind(counts_ctes(db, where, plan), query_params(where, plan), prefix)
        selects.append(f"SELECT toUInt8({side}) AS side, stack_id, n FROM (WITH {sql} SELECT stack_id, n FROM counts)")
        params.update(bound)
    union = "\n    UNION ALL\n    ".join(selects)
    return f"sides AS (\n    {union}\n),\nstack_ids AS (SELECT DISTINCT stack_id FROM sides)", params


def nodes_sql(db: str, sides: str) -> str:
    """Rows ``(node, parent, depth, name, file, base_self, base_total, comparison_self, comparison_total)``.

    Node keys as in :func:`flamehouse.collector.flame.flame_sql`; the largest
    ``max_nodes`` by share on either side (``base_grand``/``comparison_grand``, at least 1).
    """
    return f"""
WITH {sides},
nodes AS (
    SELECT node, any(parent) AS parent, any(fid) AS fid, any(d) AS depth,
           sumIf(n, side = 0 AND d = len) AS bs, sumIf(n, side = 0) AS bt,
           sumIf(n, side = 1 AND d = len) AS cs, sumIf(n, side = 1) AS ct
    FROM (
        SELECT c.side AS side, c.n AS n, length(s.fids) AS len, arraySlice(s.fids, 1, {{max_depth:UInt32}}) AS path,
               arrayCumSum(arrayMap((f, i) -> sipHash64(f, i), path, arrayEnumerate(path))) AS keys
        FROM sides AS c INNER JOIN ({stacks_sql(db)}) AS s ON s.stack_id = c.stack_id
    )
    ARRAY JOIN
        path AS fid,
        arrayEnumerate(path) AS d,
        keys AS node,
        arrayPopBack(arrayPushFront(keys, toUInt64(0))) AS parent
    GROUP BY node
    ORDER BY greatest(bt / {{base_grand:Float64}}, ct / {{comparison_grand:Float64}}) DESC, depth ASC
    LIMIT {{max_nodes:UInt32}}
)
SELECT t.node, t.parent, t.depth, if(f.function = '', concat('<unknown ', hex(t.fid), '>'), f.function), f.file,
       t.bs, t.bt, t.cs, t.ct
FROM nodes AS t LEFT JOIN ({names_sql(db)}) AS f ON f.function_id = t.fid
"""


def changes_sql(db: str, sides: str) -> str:
    """Rows ``(function, file, base_self, comparison_self, base_share, comparison_share)`` by ``|delta|`` desc."""
    return f"""
WITH {sides},
per_function AS (
    SELECT s.fids[-1] AS fid, sumIf(c.n, c.side = 0) AS bs, sumIf(c.n, c.side = 1) AS cs
    FROM sides AS c INNER JOIN ({stacks_sql(db)}) AS s ON s.stack_id = c.stack_id
    WHERE notEmpty(s.fids)
    GROUP BY fid
)
SELECT if(f.function = '', concat('<unknown ', hex(p.fid), '>'), f.function) AS name, f.file AS file, p.bs, p.cs,
       p.bs / {{base_grand:Float64}} AS base_share, p.cs / {{comparison_grand:Float64}} AS comparison_share
FROM per_function AS p LEFT JOIN ({names_sql(db)}) AS f ON f.function_id = p.fid
WHERE p.bs > 0 OR p.cs > 0
ORDER BY abs(comparison_share - base_share) DESC, name ASC, file ASC
LIMIT {{limit:UInt32}}
"""


def build_diff_tree(base_total: int, comparison_total: int, rows: list[tuple[Any, ...]]) -> tuple[DiffNode, bool]:
    """Assembles :func:`nodes_sql` rows into a tree under ``all``; returns it and whether nodes were left out.

    Built bottom-up, deepest first, without recursion. The root's ``self`` on
    each side is the samples with no known stack, so its totals are the side totals.
    """
    grand = (max(base_total, 1), max(comparison_total, 1))
    children: dict[int, list[DiffNode]] = {}
    truncated = False
    for node, parent, _depth, name, file, bs, bt, cs, ct in sorted(rows, key=lambda r: -int(r[2])):
        kids = _by_share(children.pop(node, []), grand)
        truncated = truncated or bs + sum(k.base_total for k in kids) < bt
        truncated = truncated or cs + sum(k.comparison_total for k in kids) < ct
        children.setdefault(parent, []).append(DiffNode(name, file, int(bs), int(bt), int(cs), int(ct), kids))
    top = _by_share(children.pop(0, []), grand)
    covered_b = sum(k.base_total for k in top)
    covered_c = sum(k.comparison_total for k in top)
    root = DiffNode(
        "all", "", max(base_total - covered_b, 0), max(base_total, covered_b),
        max(comparison_total - covered_c, 0), max(comparison_total, covered_c), top,
    )  # fmt: skip
    return root, truncated or bool(children)


def _by_share(nodes: list[DiffNode], grand: tuple[int, int]) -> tuple[DiffNode, ...]:
    def key(n: DiffNode) -> tuple[float, str, str]:
        return (-max(n.base_total / grand[0], n.comparison_total / grand[1]), n.name, n.file)

    return tuple(sorted(nodes, key=key))


def query_diff(
    store: Store,
    base: tuple[SampleFilter, Plan],
    comparison: tuple[SampleFilter, Plan],
    *,
    max_nodes: int,
    limit: int,
) -> DiffResult:
    """The diff of two validated selections, each with the plan that answers it."""
    started = time.perf_counter()
    db = store.db
    sides, params = sides_ctes(db, base, comparison)
    totals = store.query(f"WITH {sides} SELECT sumIf(n, side = 0), sumIf(n, side = 1) FROM sides", params)
    base_total, comparison_total = (int(v or 0) for v in totals[0]) if totals else (0, 0)
    params.update(base_grand=float(max(base_total, 1)), comparison_grand=float(max(comparison_total, 1)))
    node_params = {**params, "max_nodes": max_nodes, "max_depth": MAX_FLAME_DEPTH}
    rows = store.query(nodes_sql(db, sides), node_params)
    root, truncated = build_diff_tree(base_total, comparison_total, rows)
    changes = tuple(
        FunctionChange(str(r[0]), str(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]))
        for r in store.query(changes_sql(db, sides), {**params, "limit": limit})
    )
    elapsed_ms = (time.perf_counter() - started) * 1e3
    log.debug("query diff nodes=%d changes=%d elapsed_ms=%.1f", len(rows), len(changes), elapsed_ms)
    return DiffResult(base_total, comparison_total, root, changes, truncated, (base[1].source, comparison[1].source))

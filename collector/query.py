"""Read queries over the store: top functions, flame graphs, labels and their values.

Every aggregation runs inside ClickHouse; Python only validates input, binds
parameters and shapes the few result rows. User input (selector values, map
keys, times, limits) reaches SQL only as bound ``{name:Type}`` parameters.

The two profile queries share one plan:

1. ``counts``: samples filtered by time, kind and selector, summed per ``stack_id``;
2. stacks deduplicated with ``GROUP BY stack_id`` / ``any(function_ids)``
   (``stacks`` is a ReplacingMergeTree, so a stack may be stored twice until merged);
3. ``ARRAY JOIN`` over the root-first ``function_ids``. A function id is
   ``hash(function, file)`` (see :mod:`flamehouse.proto.ids`), so deduplicating
   ids per stack counts a recursive function once in its ``total``;
4. names come from ``frames`` grouped by ``function_id``.

A sample whose stack was never stored still counts in ``total_samples`` (and in
the flame graph root's ``self``), so totals conserve samples.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, TypedDict

from flamehouse.collector import QueryError, StoreError
from flamehouse.collector.selector import COLUMN_LABELS, LABEL_NAME, Selector, label_sql, parse_selector, to_sql
from flamehouse.collector.store import Store
from flamehouse.collector.timespec import resolve_range

log = logging.getLogger(__name__)

KINDS = ("cpu", "wall")
MAX_LIMIT = 10_000
MAX_FLAME_NODES = 100_000
DEFAULT_FLAME_NODES = 10_000
#: Deepest flame graph level returned; deeper frames still count in their ancestors' totals.
MAX_FLAME_DEPTH = 256

_RE2_ERROR = re.compile(r"cannot compile re2: (?:.*?, error: )?(.*?)(?:\. Look at|$)", re.S)


class FunctionJSON(TypedDict):
    function: str
    file: str
    self: int
    total: int


class TopJSON(TypedDict):
    total_samples: int
    functions: list[FunctionJSON]


class FlameNodeJSON(TypedDict):
    name: str
    file: str
    self: int
    total: int
    children: list[FlameNodeJSON]


class FlamegraphJSON(TypedDict):
    total_samples: int
    truncated: bool
    root: FlameNodeJSON


@dataclass(frozen=True, slots=True)
class FunctionCost:
    """Samples attributed to one function."""

    function: str
    file: str
    #: Samples where the function was the leaf (running its own code).
    self_samples: int
    #: Samples where the function was anywhere on the stack, once per stack.
    total_samples: int

    def to_json(self) -> FunctionJSON:
        return {"function": self.function, "file": self.file, "self": self.self_samples, "total": self.total_samples}


@dataclass(frozen=True, slots=True)
class TopResult:
    """Functions by self samples, highest first."""

    total_samples: int
    functions: tuple[FunctionCost, ...]

    def to_json(self) -> TopJSON:
        return {"total_samples": self.total_samples, "functions": [f.to_json() for f in self.functions]}


@dataclass(frozen=True, slots=True)
class FlameNode:
    """One call path prefix; children sorted by total, highest first."""

    name: str
    file: str
    self_samples: int
    total_samples: int
    children: tuple[FlameNode, ...] = ()

    def to_json(self) -> FlameNodeJSON:
        return {
            "name": self.name,
            "file": self.file,
            "self": self.self_samples,
            "total": self.total_samples,
            "children": [c.to_json() for c in self.children],
        }


@dataclass(frozen=True, slots=True)
class FlamegraphResult:
    """A flame graph merged by function; ``truncated`` when nodes were left out."""

    total_samples: int
    root: FlameNode
    truncated: bool = False

    def to_json(self) -> FlamegraphJSON:
        return {"total_samples": self.total_samples, "truncated": self.truncated, "root": self.root.to_json()}


@dataclass(frozen=True, slots=True)
class _Filter:
    """A validated ``WHERE`` clause over ``samples`` and its parameters."""

    sql: str
    params: dict[str, Any]


def _names_sql(db: str) -> str:
    return f"SELECT function_id, any(function) AS function, any(file) AS file FROM {db}.frames GROUP BY function_id"


def _counts_sql(db: str, where: str) -> str:
    return f"SELECT stack_id, sum(count) AS n FROM {db}.samples WHERE {where} GROUP BY stack_id"


def _stacks_sql(db: str) -> str:
    return (
        f"SELECT stack_id, any(function_ids) AS fids FROM {db}.stacks "
        "WHERE stack_id IN (SELECT stack_id FROM counts) GROUP BY stack_id"
    )


def _top_sql(db: str, where: str) -> str:
    return f"""
WITH counts AS ({_counts_sql(db, where)}),
per_function AS (
    SELECT fid, sum(n) AS total, sumIf(n, fid = leaf) AS self
    FROM (
        SELECT c.n AS n, s.fids AS fids, s.fids[-1] AS leaf
        FROM counts AS c INNER JOIN ({_stacks_sql(db)}) AS s ON s.stack_id = c.stack_id
    )
    ARRAY JOIN arrayDistinct(fids) AS fid
    GROUP BY fid
)
SELECT if(f.function = '', concat('<unknown ', hex(p.fid), '>'), f.function) AS name, f.file, p.self, p.total
FROM per_function AS p LEFT JOIN ({_names_sql(db)}) AS f ON f.function_id = p.fid
ORDER BY p.self DESC, p.total DESC, name ASC, f.file ASC
LIMIT {{limit:UInt32}}
"""


def _flame_sql(db: str, where: str) -> str:
    # A node is a path prefix. Its key is a running sum (mod 2**64) of position-salted
    # hashes of the function ids, so every prefix key costs O(1): keys[d] for the node
    # at depth d, keys[d-1] (0 for the root) for its parent.
    return f"""
WITH counts AS ({_counts_sql(db, where)}),
nodes AS (
    SELECT node, any(parent) AS parent, any(fid) AS fid, any(d) AS depth,
           sum(n) AS total, sumIf(n, d = len) AS self
    FROM (
        SELECT c.n AS n, length(s.fids) AS len, arraySlice(s.fids, 1, {{max_depth:UInt32}}) AS path,
               arrayCumSum(arrayMap((f, i) -> sipHash64(f, i), path, arrayEnumerate(path))) AS keys
        FROM counts AS c INNER JOIN ({_stacks_sql(db)}) AS s ON s.stack_id = c.stack_id
    )
    ARRAY JOIN
        path AS fid,
        arrayEnumerate(path) AS d,
        keys AS node,
        arrayPopBack(arrayPushFront(keys, toUInt64(0))) AS parent
    GROUP BY node
    ORDER BY total DESC, depth ASC
    LIMIT {{max_nodes:UInt32}}
)
SELECT t.node, t.parent, t.depth, if(f.function = '', concat('<unknown ', hex(t.fid), '>'), f.function), f.file,
       t.self, t.total
FROM nodes AS t LEFT JOIN ({_names_sql(db)}) AS f ON f.function_id = t.fid
"""


class QueryService:
    """The read API over a :class:`~flamehouse.collector.store.Store`.

    Raises :class:`~flamehouse.collector.QueryError` for bad input and lets
    :class:`~flamehouse.collector.StoreError` through when the store fails.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._db = store.db
        self._valid_patterns: set[str] = set()

    def top(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str = "cpu",
        limit: int = 100,
        now: float | None = None,
    ) -> TopResult:
        """The ``limit`` functions with the most self samples (ties: total, then name)."""
        _check_limit("limit", limit, MAX_LIMIT)
        where = self._filter(selector, from_, to, now, kind)
        started = time.perf_counter()
        total = self._total(where)
        rows = self.store.query(_top_sql(self._db, where.sql), {**where.params, "limit": limit})
        functions = tuple(FunctionCost(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows)
        log.debug("query top rows=%d elapsed_ms=%.1f", len(rows), (time.perf_counter() - started) * 1e3)
        return TopResult(total, functions)

    def flamegraph(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str = "cpu",
        now: float | None = None,
        max_nodes: int = DEFAULT_FLAME_NODES,
    ) -> FlamegraphResult:
        """The call tree merged by function path, at most ``max_nodes`` nodes (largest kept)."""
        _check_limit("max_nodes", max_nodes, MAX_FLAME_NODES)
        where = self._filter(selector, from_, to, now, kind)
        started = time.perf_counter()
        total = self._total(where)
        params = {**where.params, "max_nodes": max_nodes, "max_depth": MAX_FLAME_DEPTH}
        rows = self.store.query(_flame_sql(self._db, where.sql), params)
        result = build_tree(total, rows)
        log.debug("query flamegraph nodes=%d elapsed_ms=%.1f", len(rows), (time.perf_counter() - started) * 1e3)
        return result

    def labels(self, from_: str | None, to: str | None, *, now: float | None = None) -> list[str]:
        """Label names with a value in the range: built-in ones, then ``labels`` map keys, sorted."""
        where = self._filter("", from_, to, now, None)
        flags = ", ".join(
            "count() > 0" if name == "kind" else f"countIf({expr} != '') > 0" for name, expr in COLUMN_LABELS.items()
        )
        sql = (
            f"SELECT {flags}, groupUniqArrayArray({MAX_LIMIT})(mapKeys(labels)) "
            f"FROM {self._db}.samples WHERE {where.sql}"
        )
        row = self.store.query(sql, where.params)[0]
        names = {name for name, present in zip(COLUMN_LABELS, row[:-1], strict=True) if present}
        names.update(str(key) for key in row[-1] if key)
        return sorted(names)

    def label_values(
        self,
        name: str,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        *,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[str]:
        """Distinct non-empty values of label ``name`` among the selected samples, sorted."""
        if not LABEL_NAME.fullmatch(name):
            raise QueryError(f"invalid label name {name!r}: expected [A-Za-z_][A-Za-z0-9_]*")
        _check_limit("limit", limit, MAX_LIMIT)
        where = self._filter(selector, from_, to, now, None)
        expr, key_params = label_sql(name, "label_key")
        sql = (
            f"SELECT DISTINCT {expr} AS label_value FROM {self._db}.samples "
            f"WHERE {where.sql} AND label_value != '' ORDER BY label_value LIMIT {{limit:UInt32}}"
        )
        rows = self.store.query(sql, {**where.params, **key_params, "limit": limit})
        return [str(r[0]) for r in rows]

    def _filter(self, selector: str, from_: str | None, to: str | None, now: float | None, kind: str | None) -> _Filter:
        """Validates the common inputs into one ``WHERE`` clause over ``samples``."""
        if kind is not None and kind not in KINDS:
            raise QueryError(f"invalid kind {kind!r}: expected one of {', '.join(KINDS)}")
        parsed = parse_selector(selector)
        start, end = resolve_range(from_, to, time.time() if now is None else now)
        self._check_patterns(parsed)
        selector_sql, params = to_sql(parsed, "s")
        clauses = ["ts >= toDateTime({t_from:UInt32})", "ts < toDateTime({t_to:UInt32})"]
        params.update(t_from=start, t_to=end)
        if kind is not None:
            clauses.append("kind = {kind:String}")
            params["kind"] = kind
        clauses.append(f"({selector_sql})")
        return _Filter(" AND ".join(clauses), params)

    def _total(self, where: _Filter) -> int:
        rows = self.store.query(f"SELECT sum(count) FROM {self._db}.samples WHERE {where.sql}", where.params)
        return int(rows[0][0]) if rows else 0

    def _check_patterns(self, selector: Selector) -> None:
        """Asks ClickHouse whether each regex compiles, so a bad one is a 400, not a store failure."""
        for matcher in selector.matchers:
            if not matcher.op.is_regex or matcher.value in self._valid_patterns:
                continue
            try:
                self.store.query("SELECT match('', concat('^(?:', {p:String}, ')$'))", {"p": matcher.value})
            except StoreError as exc:
                found = _RE2_ERROR.search(str(exc))
                if found is None:
                    raise
                raise QueryError(
                    f"invalid regular expression for {matcher.name}: {found.group(1)} (RE2 syntax)"
                ) from exc
            if len(self._valid_patterns) >= 1024:
                self._valid_patterns.clear()
            self._valid_patterns.add(matcher.value)


def _check_limit(name: str, value: int, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise QueryError(f"{name} must be between 1 and {maximum}, got {value}")


def build_tree(total_samples: int, rows: list[tuple[Any, ...]]) -> FlamegraphResult:
    """Assembles ``(node, parent, depth, name, file, self, total)`` rows into a tree under ``all``.

    Rows form a prefix-closed set (the query keeps the largest nodes, parents
    first on ties); a root-level node has parent ``0``. Built bottom-up, deepest
    first, without recursion. The root's ``self`` is the samples with no known
    stack frames, so ``root.total == total_samples``.
    """
    children: dict[int, list[FlameNode]] = {}
    truncated = False
    for node, parent, _depth, name, file, self_n, total_n in sorted(rows, key=_deepest_first):
        kids = _sorted(children.pop(node, []))
        truncated = truncated or self_n + sum(k.total_samples for k in kids) < total_n
        children.setdefault(parent, []).append(FlameNode(name, file, self_n, total_n, kids))
    top = _sorted(children.pop(0, []))
    truncated = truncated or bool(children)  # only if the rows were not prefix-closed
    covered = sum(k.total_samples for k in top)
    root = FlameNode("all", "", max(total_samples - covered, 0), max(total_samples, covered), top)
    return FlamegraphResult(root.total_samples, root, truncated)


def _deepest_first(row: tuple[Any, ...]) -> int:
    return -int(row[2])


def _sorted(nodes: list[FlameNode]) -> tuple[FlameNode, ...]:
    if len(nodes) < 2:
        return tuple(nodes)
    return tuple(sorted(nodes, key=lambda n: (-n.total_samples, n.name, n.file)))

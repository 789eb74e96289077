"""Read queries over the store: top functions, flame graphs, diffs, cost per line, GPU series, labels.

Every aggregation runs inside ClickHouse; Python only validates input, binds
parameters and shapes the few result rows. User input (selector values, map
keys, times, limits, thresholds) reaches SQL only as bound ``{name:Type}``
parameters.

:class:`QueryService` is the one entry point the UI and CLI use. The queries
live beside it, one concept per module: :mod:`.filters` (the validated
``WHERE`` over samples), :mod:`.rollup` (which table answers: raw seconds or
the per-minute rollup), :mod:`.flame` (flame graph), :mod:`.diff` (two
selections compared), :mod:`.lines` (cost per line), :mod:`.gpu_state`
(which GPUs a process uses and their busy/idle state per second),
:mod:`.gpu_query` (``/gpu`` and ``/timeline`` series).

The profile queries here share one plan:

1. ``counts``: samples filtered by time, kind and selector (and, unless
   ``gpu_state`` is ``any``, by the state of the process's GPUs in that
   second, see :mod:`.gpu_state`), summed per ``stack_id``, read from
   ``samples`` or ``samples_1m`` (:func:`.rollup.choose`);
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
import time
from dataclasses import dataclass
from typing import TypedDict

from flamehouse.collector import QueryError
from flamehouse.collector.diff import DEFAULT_CHANGES, DiffResult, query_diff
from flamehouse.collector.filters import KINDS, FilterBuilder, SampleFilter, check_limit
from flamehouse.collector.flame import (
    DEFAULT_FLAME_NODES,
    MAX_FLAME_DEPTH,
    MAX_FLAME_NODES,
    FlamegraphResult,
    FlameNode,
    build_tree,
    check_by,
    flame_sql,
    names_sql,
    stacks_sql,
)
from flamehouse.collector.gpu_query import GpuResult, TimelineResult, query_gpu, query_timeline
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW, MATERIALIZE_SETTINGS
from flamehouse.collector.lines import DEFAULT_RATE, LinesResult, query_lines
from flamehouse.collector.rollup import LABEL_COLUMNS, Plan, choose, counts_ctes, query_params, rows_sql
from flamehouse.collector.selector import COLUMN_LABELS, LABEL_NAME, label_sql
from flamehouse.collector.store import Store

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FLAME_NODES",
    "KINDS",
    "MAX_FLAME_NODES",
    "MAX_LIMIT",
    "DiffResult",
    "FlameNode",
    "FlamegraphResult",
    "FunctionCost",
    "QueryService",
    "TopResult",
    "build_tree",
]

MAX_LIMIT = 10_000


class FunctionJSON(TypedDict):
    function: str
    file: str
    self: int
    total: int


class TopJSON(TypedDict):
    total_samples: int
    functions: list[FunctionJSON]


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
    #: The table that answered (``samples`` or ``samples_1m``, see :mod:`.rollup`).
    source: str = "samples"

    def to_json(self) -> TopJSON:
        return {"total_samples": self.total_samples, "functions": [f.to_json() for f in self.functions]}


def _top_sql(db: str, counts: str) -> str:
    return f"""
WITH {counts},
per_function AS (
    SELECT fid, sum(n) AS total, sumIf(n, fid = leaf) AS self, any(grand) AS grand
    FROM (
        SELECT c.n AS n, c.grand AS grand, s.fids AS fids, s.fids[-1] AS leaf
        FROM counts AS c INNER JOIN ({stacks_sql(db)}) AS s ON s.stack_id = c.stack_id
    )
    ARRAY JOIN arrayDistinct(fids) AS fid
    GROUP BY fid
)
SELECT if(f.function = '', concat('<unknown ', hex(p.fid), '>'), f.function) AS name, f.file, p.self, p.total,
       p.grand
FROM per_function AS p LEFT JOIN ({names_sql(db)}) AS f ON f.function_id = p.fid
ORDER BY p.self DESC, p.total DESC, name ASC, f.file ASC
LIMIT {{limit:UInt32}}
"""


class QueryService:
    """The read API over a :class:`~flamehouse.collector.store.Store`.

    Raises :class:`~flamehouse.collector.QueryError` for bad input and lets
    :class:`~flamehouse.collector.StoreError` through when the store fails.
    ``rollup=False`` reads raw seconds only (to compare, or for a store
    without ``samples_1m``).

    ``kind`` and ``gpu_state`` default to ``None``: the value written in the
    selector, else ``cpu`` and ``any``; given both ways they must agree.

    ``materialize``: compute each profile's per-stack counts once into a
    temporary table (``WITH counts AS MATERIALIZED``) instead of once per use;
    ``None`` (default) does so when the store has ``enable_materialized_cte``
    (ClickHouse 25.x+, every chDB this project pins), checked on first use.
    """

    def __init__(self, store: Store, *, rollup: bool = True, materialize: bool | None = None) -> None:
        self.store = store
        self._db = store.db
        self._filters = FilterBuilder(store)
        self._rollup = rollup
        self._materialize = materialize

    def top(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str | None = None,
        limit: int = 100,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
        now: float | None = None,
    ) -> TopResult:
        """The ``limit`` functions with the most self samples (ties: total, then name).

        ``gpu_state`` (``any``, ``busy``, ``idle``, ``none``) keeps only samples
        taken while the process's GPUs were in that state (see :mod:`.gpu_state`).
        """
        check_limit("limit", limit, MAX_LIMIT)
        where = self._filters.profile(
            selector, from_, to, now, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
        )
        plan = self.plan(where)
        started = time.perf_counter()
        counts = counts_ctes(self._db, where, plan, materialize=self.materialize)
        sql = _top_sql(self._db, counts) + self._settings
        rows = self.store.query(sql, {**query_params(where, plan), "limit": limit})
        total = int(rows[0][4]) if rows else self._total(where, plan)
        functions = tuple(FunctionCost(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        log.debug("query top source=%s rows=%d elapsed_ms=%.1f", plan.source, len(rows), elapsed_ms)
        return TopResult(total, functions, plan.source)

    def flamegraph(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
        now: float | None = None,
        max_nodes: int = DEFAULT_FLAME_NODES,
        by: str = "function",
    ) -> FlamegraphResult:
        """The call tree merged by function path (``by="line"``: by line path), at most ``max_nodes`` nodes."""
        check_limit("max_nodes", max_nodes, MAX_FLAME_NODES)
        check_by(by)
        where = self._filters.profile(
            selector, from_, to, now, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
        )
        plan = self.plan(where)
        started = time.perf_counter()
        params = {**query_params(where, plan), "max_nodes": max_nodes, "max_depth": MAX_FLAME_DEPTH}
        counts = counts_ctes(self._db, where, plan, materialize=self.materialize)
        rows = self.store.query(flame_sql(self._db, counts, by) + self._settings, params)
        total = int(rows[0][7]) if rows else self._total(where, plan)
        nodes = [(*row[:7], row[8] if by == "line" else None) for row in rows]
        tree = build_tree(total, nodes)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        log.debug("query flamegraph source=%s nodes=%d elapsed_ms=%.1f", plan.source, len(rows), elapsed_ms)
        return FlamegraphResult(tree.total_samples, tree.root, tree.truncated, plan.source)

    def diff(
        self,
        base: str,
        base_range: tuple[str | None, str | None],
        comparison: str,
        comparison_range: tuple[str | None, str | None],
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
        now: float | None = None,
        max_nodes: int = DEFAULT_FLAME_NODES,
        limit: int = DEFAULT_CHANGES,
    ) -> DiffResult:
        """Two selections (selector and ``(from, to)`` each) as one merged tree and per-function share changes.

        ``kind`` and ``gpu_state`` apply to both sides (each selector may also
        name them). See :mod:`.diff`.
        """
        check_limit("max_nodes", max_nodes, MAX_FLAME_NODES)
        check_limit("limit", limit, MAX_LIMIT)
        sides = []
        for name, selector, (from_, to) in (("base", base, base_range), ("comparison", comparison, comparison_range)):
            try:
                sides.append(
                    self._filters.profile(
                        selector, from_, to, now, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
                    )
                )
            except QueryError as exc:
                raise QueryError(f"{name}: {exc}") from exc
        plans = (self.plan(sides[0]), self.plan(sides[1]))
        return query_diff(self.store, (sides[0], plans[0]), (sides[1], plans[1]), max_nodes=max_nodes, limit=limit)

    def lines(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
        limit: int = 100,
        rate: float = DEFAULT_RATE,
        now: float | None = None,
    ) -> LinesResult:
        """The ``limit`` source lines with the most self samples, with CPU and GPU-busy/idle seconds.

        Read from raw seconds when the range holds GPU data (the GPU-busy/idle
        columns need each sample's second), else like :meth:`top` (see :mod:`.lines`).
        """
        check_limit("limit", limit, MAX_LIMIT)
        where = self._filters.profile(
            selector, from_, to, now, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
        )
        plan = self.plan(where)
        return query_lines(self.store, where, plan, limit=limit, rate=rate, materialize=self.materialize)

    def gpu(
        self, selector: str, from_: str | None, to: str | None, *, step: int | None = None, now: float | None = None
    ) -> GpuResult:
        """Per-device and per-process GPU series for the selected processes' GPUs (all when no selector)."""
        where = self._filters.build(selector, from_, to, now, None)
        return query_gpu(self.store, where, step)

    def timeline(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        *,
        kind: str | None = None,
        step: int | None = None,
        now: float | None = None,
    ) -> TimelineResult:
        """Selected samples per step (``kind`` default ``cpu``) and the mean SM utilisation of their GPUs."""
        where = self._filters.build(selector, from_, to, now, kind, default_kind="cpu")
        return query_timeline(self.store, where, step)

    def labels(self, from_: str | None, to: str | None, *, now: float | None = None) -> list[str]:
        """Label names with a value in the range: built-in ones, then ``labels`` map keys, sorted."""
        where = self._filters.build("", from_, to, now, None)
        plan = self.plan(where)
        flags = ", ".join(
            "count() > 0" if name == "kind" else f"countIf({expr} != '') > 0" for name, expr in COLUMN_LABELS.items()
        )
        rows = rows_sql(self._db, where, plan, LABEL_COLUMNS)
        sql = f"SELECT {flags}, groupUniqArrayArray({MAX_LIMIT})(mapKeys(labels)) FROM {rows}"
        row = self.store.query(sql, query_params(where, plan))[0]
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
        check_limit("limit", limit, MAX_LIMIT)
        where = self._filters.build(selector, from_, to, now, None)
        plan = self.plan(where)
        expr, key_params = label_sql(name, "label_key")
        sql = (
            f"SELECT DISTINCT {expr} AS label_value FROM {rows_sql(self._db, where, plan, LABEL_COLUMNS)} "
            "WHERE label_value != '' ORDER BY label_value LIMIT {limit:UInt32}"
        )
        rows = self.store.query(sql, {**query_params(where, plan), **key_params, "limit": limit})
        return [str(r[0]) for r in rows]

    def plan(self, where: SampleFilter) -> Plan:
        """Which table answers ``where`` (see :func:`.rollup.choose`)."""
        config = self.store.config
        rollup_from = None
        if config.rollup_ttl_days < config.ttl_days:  # the rollup forgets first: only recent ranges
            rollup_from = int(time.time()) - config.rollup_ttl_days * 86400
        return choose(where, enabled=self._rollup, rollup_from=rollup_from)

    @property
    def materialize(self) -> bool:
        """Whether profile queries materialize their ``counts`` CTE (see the class docstring)."""
        if self._materialize is None:
            rows = self.store.query("SELECT count() FROM system.settings WHERE name = 'enable_materialized_cte'")
            self._materialize = bool(rows and rows[0][0])
        return self._materialize

    @property
    def _settings(self) -> str:
        return MATERIALIZE_SETTINGS if self.materialize else ""

    def _total(self, where: SampleFilter, plan: Plan) -> int:
        """Selected samples (in the wanted GPU state), for a profile query that returned no rows."""
        sql = f"WITH {counts_ctes(self._db, where, plan)} SELECT sum(n) FROM counts"
        rows = self.store.query(sql, query_params(where, plan))
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

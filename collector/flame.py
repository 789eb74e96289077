"""The flame graph: its model, its SQL and the tree built from that SQL's rows.

The query merges stacks by path inside ClickHouse (see :func:`flame_sql`):
``by="function"`` merges frames of one function (``function_ids``, a
function is ``(name, file)``), ``by="line"`` keeps each ``(function, file,
line)`` frame apart (``frame_ids``), so one function splits into a node per
line it was sampled at and the nodes carry ``line``. :func:`build_tree`
assembles the node rows into a :class:`FlameNode` tree without recursion.
Used by :meth:`flamehouse.collector.query.QueryService.flamegraph`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from flamehouse.collector import QueryError

log = logging.getLogger(__name__)

MAX_FLAME_NODES = 100_000
DEFAULT_FLAME_NODES = 10_000
#: Deepest flame graph level returned; deeper frames still count in their ancestors' totals.
MAX_FLAME_DEPTH = 256
#: How frames merge: per function, or per source line (``(function, file, line)``).
FLAME_BY = ("function", "line")


class FlameNodeJSON(TypedDict):
    name: str
    file: str
    line: NotRequired[int]
    self: int
    total: int
    children: list[FlameNodeJSON]


class FlamegraphJSON(TypedDict):
    total_samples: int
    truncated: bool
    root: FlameNodeJSON


@dataclass(frozen=True, slots=True)
class FlameNode:
    """One call path prefix; children sorted by total, highest first."""

    name: str
    file: str
    self_samples: int
    total_samples: int
    children: tuple[FlameNode, ...] = ()
    #: Source line of a node split by line (``by="line"``); ``None`` when merged per function.
    line: int | None = None

    def to_json(self) -> FlameNodeJSON:
        node: FlameNodeJSON = {
            "name": self.name,
            "file": self.file,
            "self": self.self_samples,
            "total": self.total_samples,
            "children": [c.to_json() for c in self.children],
        }
        if self.line is not None:
            node["line"] = self.line
        return node


@dataclass(frozen=True, slots=True)
class FlamegraphResult:
    """A flame graph merged by function or line; ``truncated`` when nodes were left out."""

    total_samples: int
    root: FlameNode
    truncated: bool = False
    #: The table that answered (``samples`` or ``samples_1m``, see :mod:`.rollup`).
    source: str = "samples"

    def to_json(self) -> FlamegraphJSON:
        return {"total_samples": self.total_samples, "truncated": self.truncated, "root": self.root.to_json()}


def check_by(by: str) -> str:
    """``by`` when it is one of :data:`FLAME_BY`, else QueryError saying what to fix."""
    if by not in FLAME_BY:
        raise QueryError(f"invalid by {by!r}: expected one of {', '.join(FLAME_BY)}")
    return by


def names_sql(db: str, by: str = "function") -> str:
    """``(function_id, function, file, line)`` by function id, or by frame id (as ``function_id``) for lines.

    Per function, ``line`` is 0.
    """
    if by == "line":
        return (
            "SELECT frame_id AS function_id, any(function) AS function, any(file) AS file, any(line) AS line "
            f"FROM {db}.frames GROUP BY frame_id"
        )
    return (
        "SELECT function_id, any(function) AS function, any(file) AS file, toUInt32(0) AS line "
        f"FROM {db}.frames GROUP BY function_id"
    )


def stacks_sql(db: str, by: str = "function") -> str:
    """The stored stacks named by a ``stack_ids`` CTE, one row per ``stack_id``: ``fids`` root first.

    ``fids`` are function ids, or frame ids with ``by="line"``.
    """
    column = "frame_ids" if by == "line" else "function_ids"
    return (
        f"SELECT stack_id, any({column}) AS fids FROM {db}.stacks "
        "WHERE stack_id IN (SELECT stack_id FROM stack_ids) GROUP BY stack_id"
    )


def flame_sql(db: str, counts: str, by: str = "function") -> str:
    """The node rows ``(node, parent, depth, name, file, self, total, total_samples, line)``.

    ``counts`` is the CTE list from :func:`flamehouse.collector.gpu_state.counts_ctes`
    (``counts (stack_id, n)`` and ``stack_ids``).
    A node is a path prefix. Its key is a running sum (mod 2**64) of
    position-salted hashes of the function ids, so every prefix key costs
    O(1): ``keys[d]`` for the node at depth d, ``keys[d-1]`` (0 for the root)
    for its parent.
    """
    return f"""
WITH {counts},
nodes AS (
    SELECT node, any(parent) AS parent, any(fid) AS fid, any(d) AS depth,
           sum(n) AS total, sumIf(n, d = len) AS self, any(grand) AS grand
    FROM (
        SELECT c.n AS n, c.grand AS grand, length(s.fids) AS len, arraySlice(s.fids, 1, {{max_depth:UInt32}}) AS path,
               arrayCumSum(arrayMap((f, i) -> sipHash64(f, i), path, arrayEnumerate(path))) AS keys
        FROM counts AS c INNER JOIN ({stacks_sql(db, by)}) AS s ON s.stack_id = c.stack_id
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
       t.self, t.total, t.grand, f.line
FROM nodes AS t LEFT JOIN ({names_sql(db, by)}) AS f ON f.function_id = t.fid
"""


def build_tree(total_samples: int, rows: list[tuple[Any, ...]]) -> FlamegraphResult:
    """Assembles ``(node, parent, depth, name, file, self, total[, line])`` rows into a tree under ``all``.

    Rows form a prefix-closed set (the query keeps the largest nodes, parents
    first on ties); a root-level node has parent ``0``. Built bottom-up, deepest
    first, without recursion. The root's ``self`` is the samples with no known
    stack frames, so ``root.total == total_samples``. A ``line`` (8th value)
    that is not ``None`` is kept on the node.
    """
    children: dict[int, list[FlameNode]] = {}
    truncated = False
    for node, parent, _depth, name, file, self_n, total_n, *rest in sorted(rows, key=_deepest_first):
        kids = _sorted(children.pop(node, []))
        truncated = truncated or self_n + sum(k.total_samples for k in kids) < total_n
        line = None if not rest or rest[0] is None else int(rest[0])
        children.setdefault(parent, []).append(FlameNode(name, file, self_n, total_n, kids, line))
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
    return tuple(sorted(nodes, key=lambda n: (-n.total_samples, n.name, n.file, n.line or 0)))

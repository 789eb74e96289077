"""The diff route: two selections compared as one merged call tree and per-function share changes.

Route (mounted under ``/api/v1`` by :func:`flamehouse.ui.app.create_app`)::

    GET /api/v1/diff   base vs comparison: merged tree with both sides' samples, largest share changes

The body is built by :mod:`flamehouse.collector.diff`; the models here only
document it for the OpenAPI page.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from flamehouse.collector.diff import DEFAULT_CHANGES
from flamehouse.collector.flame import DEFAULT_FLAME_NODES
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW
from flamehouse.collector.query import QueryService
from flamehouse.ui.params import (
    ERRORS,
    SOURCE_HEADER,
    GpuStateParam,
    IdleBelowParam,
    OptionalKindParam,
    SelectorParam,
)

log = logging.getLogger(__name__)


class DiffNodeModel(BaseModel):
    name: str
    file: str
    base_self: int
    base_total: int
    comparison_self: int
    comparison_total: int
    children: list[DiffNodeModel] = Field(description="Sorted by the larger of the two shares, highest first.")


class ChangeModel(BaseModel):
    function: str
    file: str
    base_self: int
    comparison_self: int
    base_share: float = Field(description="Self samples / base total.")
    comparison_share: float = Field(description="Self samples / comparison total.")
    delta: float = Field(description="`comparison_share - base_share`.")


class DiffSourceModel(BaseModel):
    base: str = Field(description="`samples` or `samples_1m` (the per-minute rollup).")
    comparison: str


class DiffResponse(BaseModel):
    base_total: int
    comparison_total: int
    truncated: bool = Field(description="True when tree nodes were left out by max_nodes or the depth limit.")
    source: DiffSourceModel
    root: DiffNodeModel
    changes: list[ChangeModel] = Field(description="By |delta|, largest first.")


_TIMES = "RFC 3339, unix seconds, `now` or `now-15m`, as `from`/`to` elsewhere."
BaseFrom = Annotated[str | None, Query(description=f"Start of the base range, default `now-1h`. {_TIMES}")]
BaseTo = Annotated[str | None, Query(description="End of the base range, default `now`.")]
ComparisonSelector = Annotated[
    str | None, Query(description="Selector of the comparison side; default: the base selector.")
]
ComparisonFrom = Annotated[str | None, Query(description="Start of the comparison range, default `now-1h`.")]
ComparisonTo = Annotated[str | None, Query(description="End of the comparison range, default `now`.")]


def diff_router(queries: QueryService) -> APIRouter:
    """The ``/api/v1/diff`` route over ``queries``."""
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get("/diff", response_model=DiffResponse, summary="Compare two selections")
    def diff(
        *,
        base: SelectorParam = "",
        base_from: BaseFrom = None,
        base_to: BaseTo = None,
        comparison: ComparisonSelector = None,
        comparison_from: ComparisonFrom = None,
        comparison_to: ComparisonTo = None,
        kind: OptionalKindParam = None,
        gpu_state: GpuStateParam = None,
        gpu_idle_below: IdleBelowParam = DEFAULT_IDLE_BELOW,
        max_nodes: Annotated[
            int, Query(description="Most tree nodes, 1 to 100000; the largest share on either side are kept.")
        ] = DEFAULT_FLAME_NODES,
        limit: Annotated[int, Query(description="Changes to return, 1 to 10000.")] = DEFAULT_CHANGES,
    ) -> Response:
        """Both sides' call trees merged per function path, with each side's self and total samples, and the
        functions whose self share (self / side total, as Pyroscope and Parca normalise) changed most.
        `kind` and `gpu_state` apply to both sides. Header `X-Flamehouse-Source`: `base,comparison` tables."""
        result = queries.diff(
            base, (base_from, base_to), base if comparison is None else comparison, (comparison_from, comparison_to),
            kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below, max_nodes=max_nodes, limit=limit,
        )  # fmt: skip
        return JSONResponse(result.to_json(), headers={SOURCE_HEADER: ",".join(result.sources)})

    return router

"""Query parameters and error responses shared by the API's routers, documented for the OpenAPI page.

Each parameter is an ``Annotated`` type carrying its description, so every
route that takes it documents it the same way. Values are only parsed here;
the collector's query layer validates them and raises
:class:`~flamehouse.collector.QueryError` (HTTP 400) saying what to fix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW

_SELECTOR_DOC = (
    'Label selector, e.g. `{service="trainer", host=~"gpu-.*", rank!="0"}`; operators `= != =~ !~`; '
    "regular expressions (RE2) match the whole value. Empty or `{}` selects everything. "
    '`kind="wall"` and `gpu_state="idle"` inside it set those parameters (only `=`; given both ways they must agree).'
)
_TIME_DOC = "RFC 3339 (`2026-11-29T12:00:00Z`), unix seconds, `now` or `now-15m` (units s m h d w)."

SelectorParam = Annotated[str, Query(description=_SELECTOR_DOC, examples=['{service="trainer"}'])]
FromParam = Annotated[str | None, Query(alias="from", description=f"Start (inclusive), default `now-1h`. {_TIME_DOC}")]
ToParam = Annotated[str | None, Query(description=f"End (exclusive), default `now`. {_TIME_DOC}")]
KindParam = Annotated[str, Query(description="`cpu` (active threads) or `wall` (all threads, idle included).")]
#: ``kind`` of the routes that also read it from the selector (``None``: the selector's, else ``cpu``).
OptionalKindParam = Annotated[
    str | None,
    Query(description="`cpu` (active threads, the default) or `wall` (all threads, idle included); or `kind=` in "
          "the selector."),
]  # fmt: skip
GpuStateParam = Annotated[
    str | None,
    Query(
        description="Keep only samples taken while the process's GPUs were `busy`, `idle` (mean SM utilisation "
        "under `gpu_idle_below`) or had no data (`none`); `any` (default) keeps every sample and reads no GPU "
        "table. A process's GPUs: those NVML saw it use, else its `CUDA_VISIBLE_DEVICES`, else all of its host's. "
        "Or `gpu_state=` in the selector."
    ),
]
IdleBelowParam = Annotated[
    float,
    Query(
        description="Percent of SM utilisation under which GPUs count as idle, "
        f"0 to 100 (default {DEFAULT_IDLE_BELOW:g})."
    ),
]
StepParam = Annotated[
    int | None,
    Query(description="Bucket width in seconds (at least 1, at most 11000 buckets); default: the smallest of "
          "1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h, whole days giving at most 600 points."),
]  # fmt: skip


ByParam = Annotated[
    str,
    Query(description="`function` (default): frames of one function merge; `line`: one node per source line "
          "(function, file, line), and nodes carry `line`."),
]  # fmt: skip

#: Response header naming the table that answered: `samples` (seconds) or `samples_1m` (the per-minute rollup).
SOURCE_HEADER = "X-Flamehouse-Source"


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong and how to fix it.")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    503: {"model": ErrorResponse, "description": "Store unavailable"},
}

"""``GET /api/v1/export``: the selected samples as a speedscope, pprof or folded file.

Mounted under ``/api/v1`` by :func:`flamehouse.ui.app.create_app`. The stacks
come aggregated from ClickHouse (:mod:`flamehouse.collector.export_query`);
one module per format renders them (:mod:`flamehouse.ui.formats`). The file is
sent with ``Content-Disposition: attachment`` and a name such as
``flamehouse-cpu-1764417600-1764421200.pb.gz``.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from flamehouse.collector import QueryError
from flamehouse.collector.export_query import ExportQuery
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW
from flamehouse.collector.lines import DEFAULT_RATE, MAX_RATE
from flamehouse.collector.store import Store
from flamehouse.ui.formats import FORMATS, ExportProfile
from flamehouse.ui.params import (
    ERRORS,
    FromParam,
    GpuStateParam,
    IdleBelowParam,
    OptionalKindParam,
    SelectorParam,
    ToParam,
)

log = logging.getLogger(__name__)

FormatParam = Annotated[
    Literal["speedscope", "pprof", "folded"],
    Query(
        alias="format",
        description="`speedscope` (JSON, sampled profiles; open at speedscope.app), `pprof` (gzipped "
        "profile.proto; `go tool pprof`) or `folded` (`frame;frame count` lines; flamegraph.pl, "
        "`flamehouse import`).",
    ),
]
PerThreadParam = Annotated[
    bool,
    Query(
        description="One profile per thread (speedscope), a `thread` label per sample (pprof), "
        "a `thread (0): NAME` root frame (folded). Default: threads merged. Not with `gpu_state`."
    ),
]
RateParam = Annotated[
    float,
    Query(
        description="The agents' sampling rate, samples per second: pprof's time per sample is `1e9 / rate` "
        f"nanoseconds (default {DEFAULT_RATE:g})."
    ),
]

_CONTENT = {f.media_type.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for f in FORMATS.values()}


def export_router(store: Store) -> APIRouter:
    """The ``/export`` route over ``store``."""
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    exports = ExportQuery(store)

    @router.get(
        "/export",
        response_class=Response,
        summary="Export a profile as speedscope, pprof or folded stacks",
        responses={200: {"content": _CONTENT, "description": "The file, as an attachment."}},
    )
    def export(
        *,
        format_: FormatParam = "speedscope",
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: OptionalKindParam = None,
        gpu_state: GpuStateParam = None,
        gpu_idle_below: IdleBelowParam = DEFAULT_IDLE_BELOW,
        per_thread: PerThreadParam = False,
        rate: RateParam = DEFAULT_RATE,
    ) -> Response:
        """Every selected stack with its sample count, frames with file and line. Counts are exact
        (a stack never stored is one `<unknown stack>` frame); at most 500000 distinct stacks."""
        if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
            raise QueryError(f"rate must be above 0 and at most {MAX_RATE:g} samples per second, got {rate}")
        output = FORMATS[format_]
        result = exports.stacks(
            selector, from_, to, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below, per_thread=per_thread
        )
        name = f"flamehouse {result.kind} {selector.strip() or '{}'}"
        profile = ExportProfile.from_result(result, name=name, rate=rate)
        body = output.render(profile)
        log.debug("export format=%s stacks=%d bytes=%d", output.name, len(profile.stacks), len(body))
        disposition = f'attachment; filename="{output.filename(profile)}"'
        return Response(body, media_type=output.media_type, headers={"Content-Disposition": disposition})

    return router

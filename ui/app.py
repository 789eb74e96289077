"""The FastAPI application: the JSON query API, health and Prometheus metrics.

Routes::

    GET /api/v1/top                   functions by self samples
    GET /api/v1/flamegraph            call tree merged by function
    GET /api/v1/labels                label names with data in a time range
    GET /api/v1/labels/{name}/values  values of one label
    GET /healthz                      200 when ready, else 503
    GET /metrics                      Prometheus text format

Errors are ``{"error": message}``: a malformed request (bad selector, time,
kind, limit or parameter type) is HTTP 400, a failing store is 503. Pydantic
is used only here, at the edge, to document the responses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field

from flamehouse import __version__
from flamehouse.collector import QueryError, StoreError
from flamehouse.collector.query import DEFAULT_FLAME_NODES, QueryService

log = logging.getLogger(__name__)

_SELECTOR_DOC = (
    'Label selector, e.g. `{service="trainer", host=~"gpu-.*", rank!="0"}`; operators `= != =~ !~`; '
    "regular expressions (RE2) match the whole value. Empty or `{}` selects everything."
)
_TIME_DOC = "RFC 3339 (`2026-11-29T12:00:00Z`), unix seconds, `now` or `now-15m` (units s m h d w)."

SelectorParam = Annotated[str, Query(description=_SELECTOR_DOC, examples=['{service="trainer"}'])]
FromParam = Annotated[str | None, Query(alias="from", description=f"Start (inclusive), default `now-1h`. {_TIME_DOC}")]
ToParam = Annotated[str | None, Query(description=f"End (exclusive), default `now`. {_TIME_DOC}")]
KindParam = Annotated[str, Query(description="`cpu` (active threads) or `wall` (all threads, idle included).")]


class FunctionModel(BaseModel):
    function: str
    file: str
    self: int = Field(description="Samples where the function was the leaf frame.")
    total: int = Field(description="Samples where the function was on the stack (once per stack).")


class TopResponse(BaseModel):
    total_samples: int
    functions: list[FunctionModel]


class FlameNodeModel(BaseModel):
    name: str
    file: str
    self: int
    total: int
    children: list[FlameNodeModel] = Field(description="Sorted by total, highest first.")


class FlamegraphResponse(BaseModel):
    total_samples: int
    truncated: bool = Field(description="True when nodes were left out by max_nodes or the depth limit.")
    root: FlameNodeModel


class LabelsResponse(BaseModel):
    labels: list[str]


class LabelValuesResponse(BaseModel):
    name: str
    values: list[str]


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong and how to fix it.")


class HealthResponse(BaseModel):
    status: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    503: {"model": ErrorResponse, "description": "Store unavailable"},
}


class _HttpMetrics:
    """Request counters and latencies, registered in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "flamehouse_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "flamehouse_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            registry=registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.duration.labels(route=route).observe(seconds)


def create_app(
    queries: QueryService,
    *,
    ready: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Builds the app. ``ready`` backs ``/healthz``; ``/metrics`` exposes ``registry``.

    The HTTP metrics are registered in ``registry`` (a fresh one when ``None``),
    so one registry serves one app.
    """
    registry = CollectorRegistry() if registry is None else registry
    metrics = _HttpMetrics(registry)
    app = FastAPI(
        title="flamehouse",
        version=__version__,
        description="Continuous profiling for ML jobs: top functions, flame graphs and labels over stored samples.",
    )
    _install_error_handlers(app)
    _install_metrics_middleware(app, metrics)
    app.include_router(_api_router(queries))
    app.include_router(_ops_router(ready, registry))
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def query_error(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def store_error(request: Request, exc: Exception) -> Response:
        log.warning("store error path=%s error=%s", request.url.path, exc)
        return JSONResponse({"error": f"store unavailable: {str(exc)[:300]}"}, status_code=503)

    async def validation_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):  # registered for this type only
            raise exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'request'}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)

    app.add_exception_handler(QueryError, query_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _install_metrics_middleware(app: FastAPI, metrics: _HttpMetrics) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.observe(route, status, time.perf_counter() - started)


def _api_router(queries: QueryService) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=_ERRORS)

    @router.get("/top", response_model=TopResponse, summary="Top functions by self samples")
    def top(
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: KindParam = "cpu",
        limit: Annotated[int, Query(description="Functions to return, 1 to 10000.")] = 100,
    ) -> Response:
        """Functions sorted by self samples (ties: total, then name). `total` counts a recursive
        function once per stack."""
        result = queries.top(selector, from_, to, kind=kind, limit=limit)
        return JSONResponse(result.to_json())

    @router.get("/flamegraph", response_model=FlamegraphResponse, summary="Flame graph merged by function")
    def flamegraph(
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: KindParam = "cpu",
        max_nodes: Annotated[
            int, Query(description="Most nodes to return, 1 to 100000; the largest are kept.")
        ] = DEFAULT_FLAME_NODES,
    ) -> Response:
        """The call tree under a root named `all`; `root.total` equals `total_samples`."""
        result = queries.flamegraph(selector, from_, to, kind=kind, max_nodes=max_nodes)
        return JSONResponse(result.to_json())

    @router.get("/labels", response_model=LabelsResponse, summary="Label names")
    def labels(from_: FromParam = None, to: ToParam = None) -> Response:
        """Built-in labels that have values in the range, and user label keys, sorted."""
        return JSONResponse({"labels": queries.labels(from_, to)})

    @router.get("/labels/{name}/values", response_model=LabelValuesResponse, summary="Values of one label")
    def label_values(
        name: str,
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        limit: Annotated[int, Query(description="Values to return, 1 to 10000.")] = 1000,
    ) -> Response:
        """Distinct non-empty values of label `name` among the selected samples, sorted."""
        values = queries.label_values(name, selector, from_, to, limit=limit)
        return JSONResponse({"name": name, "values": values})

    return router


def _ops_router(ready: Callable[[], bool], registry: CollectorRegistry) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    def healthz() -> Response:
        """200 `{"status": "ok"}` when the server can answer queries, else 503."""
        try:
            ok = ready()
        except Exception:  # a failing probe means not ready, never a 500
            log.warning("readiness probe failed", exc_info=True)
            ok = False
        if ok:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    @router.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def prometheus_metrics() -> Response:
        """Every metric in the server's registry, in the Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router

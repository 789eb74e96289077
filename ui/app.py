"""The FastAPI application: the JSON query API, health and Prometheus metrics.

Routes::

    GET /api/v1/top                   functions by self samples
    GET /api/v1/flamegraph            call tree merged by function (or by line)
    GET /api/v1/diff                  two selections compared: merged tree, share changes  } ui.diff_api
    GET /api/v1/lines                 cost per source line (CPU and GPU-busy/idle seconds)  } ui.gpu_api
    GET /api/v1/gpu                   GPU device and process series                         }
    GET /api/v1/timeline              samples and GPU utilisation per step                  }
    GET /api/v1/export                speedscope, pprof or folded file of the selection     } ui.export_api
    GET /api/v1/labels                label names with data in a time range
    GET /api/v1/labels/{name}/values  values of one label
    GET /healthz                      200 when ready, else 503
    GET /metrics                      Prometheus text format

Errors are ``{"error": message}``: a malformed request (bad selector, time,
kind, limit, gpu_state, threshold, step or parameter type) is HTTP 400, a
failing store is 503. ``top`` and ``flamegraph`` take ``gpu_state`` and
``gpu_idle_below`` to keep only samples taken while the process's GPUs were
busy, idle or without data. Pydantic is used only here, at the edge, to
document the responses.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field

from flamehouse import __version__
from flamehouse.collector import QueryError, StoreError
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW
from flamehouse.collector.query import DEFAULT_FLAME_NODES, QueryService
from flamehouse.ui.diff_api import diff_router
from flamehouse.ui.export_api import export_router
from flamehouse.ui.gpu_api import gpu_router
from flamehouse.ui.params import (
    ERRORS,
    SOURCE_HEADER,
    ByParam,
    FromParam,
    GpuStateParam,
    IdleBelowParam,
    OptionalKindParam,
    SelectorParam,
    ToParam,
)

log = logging.getLogger(__name__)


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
    line: int | None = Field(None, description="Source line, with `by=line` only (0 when unknown).")
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


class HealthResponse(BaseModel):
    status: str


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
    app.include_router(gpu_router(queries))
    app.include_router(diff_router(queries))
    app.include_router(export_router(queries.store))
    app.include_router(_ops_router(ready, registry))
    _mount_pages(app)
    return app


def _mount_pages(app: FastAPI) -> None:
    """The web UI: ``GET /`` is ``static/index.html``, ``/static/*`` its ES modules and CSS.

    Plain files shipped in the package (no build step, nothing fetched from elsewhere);
    the pages only call the JSON API. Left out of the OpenAPI schema.
    """
    from pathlib import Path

    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    static = Path(__file__).with_name("static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static), name="static")


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
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get("/top", response_model=TopResponse, summary="Top functions by self samples")
    def top(
        *,
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: OptionalKindParam = None,
        limit: Annotated[int, Query(description="Functions to return, 1 to 10000.")] = 100,
        gpu_state: GpuStateParam = None,
        gpu_idle_below: IdleBelowParam = DEFAULT_IDLE_BELOW,
    ) -> Response:
        """Functions sorted by self samples (ties: total, then name). `total` counts a recursive
        function once per stack. Header `X-Flamehouse-Source`: the table that answered."""
        result = queries.top(
            selector, from_, to, kind=kind, limit=limit, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below
        )
        return JSONResponse(result.to_json(), headers={SOURCE_HEADER: result.source})

    @router.get("/flamegraph", response_model=FlamegraphResponse, summary="Flame graph merged by function")
    def flamegraph(
        *,
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: OptionalKindParam = None,
        max_nodes: Annotated[
            int, Query(description="Most nodes to return, 1 to 100000; the largest are kept.")
        ] = DEFAULT_FLAME_NODES,
        gpu_state: GpuStateParam = None,
        gpu_idle_below: IdleBelowParam = DEFAULT_IDLE_BELOW,
        by: ByParam = "function",
    ) -> Response:
        """The call tree under a root named `all`; `root.total` equals `total_samples`. With `by=line` a node is
        one source line (nodes carry `line`). Header `X-Flamehouse-Source`: the table that answered."""
        result = queries.flamegraph(
            selector, from_, to, kind=kind, max_nodes=max_nodes, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below,
            by=by,
        )  # fmt: skip
        return JSONResponse(result.to_json(), headers={SOURCE_HEADER: result.source})

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


# --------------------------------------------------------------------------- read-only API tokens


def require_read_token(app: FastAPI, tokens: frozenset[str]) -> None:
    """Requires ``Authorization: Bearer <one of tokens>`` on every ``/api/…`` route, else HTTP 401.

    These read-only tokens are separate from the agents' ingest tokens. ``/healthz``, ``/metrics``
    and the OpenAPI pages stay open. Tokens are compared in constant time and never logged.
    """
    accepted = tuple(t.encode("utf-8") for t in tokens)

    def allowed(header: str) -> bool:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return False
        matched = False
        for token in accepted:  # no early exit: every comparison runs
            matched |= hmac.compare_digest(presented.strip().encode("utf-8"), token)
        return matched

    @app.middleware("http")
    async def read_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/api/") and not allowed(request.headers.get("authorization", "")):
            return JSONResponse(
                {"error": "missing or invalid API token: send 'Authorization: Bearer <token>' with a read token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="flamehouse"'},
            )
        return await call_next(request)

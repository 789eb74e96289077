"""The GPU-aware routes: cost per line, GPU device/process series and the samples/GPU timeline.

Routes (mounted under ``/api/v1`` by :func:`flamehouse.ui.app.create_app`)::

    GET /api/v1/lines      source lines by self samples, with CPU and GPU-busy/idle seconds
    GET /api/v1/gpu        per-device and per-process GPU series
    GET /api/v1/timeline   selected samples and their GPUs' mean utilisation per step

The response models document the JSON for the OpenAPI page; the bodies are
built by the collector's query layer (:mod:`flamehouse.collector.lines`,
:mod:`flamehouse.collector.gpu_query`).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW
from flamehouse.collector.lines import DEFAULT_RATE
from flamehouse.collector.query import QueryService
from flamehouse.ui.params import (
    ERRORS,
    FromParam,
    GpuStateParam,
    IdleBelowParam,
    OptionalKindParam,
    SelectorParam,
    StepParam,
    ToParam,
)

log = logging.getLogger(__name__)


class LineModel(BaseModel):
    file: str
    line: int
    function: str
    self: int = Field(description="Samples whose leaf frame is this line.")
    total: int = Field(description="Samples whose stack holds this line (once per stack).")
    cpu_seconds: float = Field(description="`self / rate`.")
    gpu_busy_seconds: float = Field(description="Self samples taken while the process's GPUs were busy, `/ rate`.")
    gpu_idle_seconds: float = Field(
        description="Self samples taken while the process's GPUs were idle, `/ rate`: GPU time wasted at this line."
    )


class LinesResponse(BaseModel):
    total_samples: int
    rate: float = Field(description="The sampling rate used to turn samples into seconds.")
    lines: list[LineModel] = Field(description="Sorted by self, highest first.")


class DeviceSeries(BaseModel):
    time: list[int] = Field(description="Bucket starts, unix seconds; buckets without rows are left out.")
    sm_util: list[float | None] = Field(description="Mean SM utilisation, percent.")
    mem_util: list[float | None] = Field(description="Mean memory-controller utilisation, percent.")
    mem_used: list[float | None] = Field(description="Mean memory used, bytes.")
    mem_total: list[float | None] = Field(description="Mean memory size, bytes.")
    power_w: list[float | None]
    temperature_c: list[float | None]


class DeviceModel(BaseModel):
    host: str
    index: int = Field(description="NVML device index on its host.")
    uuid: str
    name: str
    series: DeviceSeries


class ProcessSeries(BaseModel):
    time: list[int]
    sm_util: list[float | None]
    mem_used: list[float | None] = Field(description="Mean memory used by the process on this device, bytes.")


class ProcessModel(BaseModel):
    host: str
    pid: int
    index: int
    series: ProcessSeries


class GpuResponse(BaseModel):
    step: int = Field(description="Bucket width, seconds; buckets start at `from`.")
    devices: list[DeviceModel]
    processes: list[ProcessModel]


class TimelineResponse(BaseModel):
    step: int
    time: list[int] = Field(description="Every bucket start of the range, unix seconds.")
    samples: list[int] = Field(description="Selected samples per bucket.")
    gpu_util: list[float | None] = Field(
        description="Mean SM utilisation of the selected processes' GPUs per bucket; null without GPU data."
    )


def gpu_router(queries: QueryService) -> APIRouter:
    """The ``/api/v1`` routes of this module, over ``queries``."""
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get("/lines", response_model=LinesResponse, summary="Cost per source line")
    def lines(
        *,
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: OptionalKindParam = None,
        gpu_state: GpuStateParam = None,
        gpu_idle_below: IdleBelowParam = DEFAULT_IDLE_BELOW,
        limit: Annotated[int, Query(description="Lines to return, 1 to 10000.")] = 100,
        rate: Annotated[
            float, Query(description=f"Sampling rate of the agents, samples per second (default {DEFAULT_RATE:g}).")
        ] = DEFAULT_RATE,
    ) -> Response:
        """Lines (function, file, line) sorted by self samples, with CPU seconds and the GPU seconds spent
        busy or idle while the process sat at each line."""
        result = queries.lines(
            selector, from_, to, kind=kind, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below, limit=limit, rate=rate
        )
        return JSONResponse(result.to_json())

    @router.get("/gpu", response_model=GpuResponse, summary="GPU device and process series")
    def gpu(
        selector: SelectorParam = "", from_: FromParam = None, to: ToParam = None, step: StepParam = None
    ) -> Response:
        """Per-device and per-process GPU metrics averaged per step. Devices: those the selected processes use
        (NVML's per-process data, else `CUDA_VISIBLE_DEVICES`, else every GPU of the host); with an empty
        selector, every device. Null where a bucket's values are all missing."""
        return JSONResponse(queries.gpu(selector, from_, to, step=step).to_json())

    @router.get("/timeline", response_model=TimelineResponse, summary="Samples and GPU utilisation per step")
    def timeline(
        selector: SelectorParam = "",
        from_: FromParam = None,
        to: ToParam = None,
        kind: OptionalKindParam = None,
        step: StepParam = None,
    ) -> Response:
        """For every step of the range: the selected samples, and the mean SM utilisation of the GPUs the
        selected processes use (null where no GPU data)."""
        return JSONResponse(queries.timeline(selector, from_, to, kind=kind, step=step).to_json())

    return router

"""GPU samples replayed from a file, followed like ``tail -F`` (``--gpu replay:FILE``).

For hosts without NVML, and for metrics recorded elsewhere or written live by
another exporter. The file is read from its start, then followed: lines
appended later are picked up by later polls. Only complete lines (ending in
``\\n``) are consumed. A file that does not exist yet is waited for; a file that
shrinks (truncated) is read again from its start; a file replaced under the same
name (rotated) is finished, then the new one is read from its start. The format
is detected per file from its first non-empty line.

JSON lines
    One object per line; other keys are ignored. A **device row**::

        {"time": 1795953601.12, "index": 0, "uuid": "GPU-5c4e...", "name": "NVIDIA H200",
         "sm_util": 87.5, "mem_util": 40, "mem_used_bytes": 31457280000,
         "mem_total_bytes": 150754820096, "power_watts": 350.1, "temperature_c": 55,
         "sm_clock_mhz": 1980}

    ``time`` (unix seconds, int or float), ``index`` (int >= 0) and ``sm_util``
    (percent) are required. Missing or ``null``: ``mem_util``, ``power_watts``,
    ``temperature_c``, ``sm_clock_mhz`` → nan; ``mem_used_bytes``,
    ``mem_total_bytes`` → 0; ``name`` → ""; ``uuid`` → as for process rows.

    A row with a ``"pid"`` key is a **process row** (NVML reports host pids)::

        {"time": 1795953601.12, "pid": 1234, "index": 0, "sm_util": 55, "mem_used_bytes": 1073741824}

    ``time``, ``pid`` (int > 0) and ``index`` are required; ``sm_util`` missing or
    ``null`` → nan (no sample that second); ``mem_used_bytes`` → 0; ``uuid`` → the
    UUID of the latest device row with that index, else ``host_gpus[index]``, else "".

nvidia-smi CSV
    What ``nvidia-smi --query-gpu=timestamp,index,uuid,name,utilization.gpu,
    utilization.memory,memory.used,memory.total,power.draw,temperature.gpu,clocks.sm
    --format=csv -l 1`` prints. Columns are found by header name, in any order,
    extra ones ignored; the header may be printed again. nvidia-smi names the
    ``clocks.sm`` column ``clocks.current.sm``; both are accepted, as is
    ``power.draw.instant`` where ``power.draw`` is absent. ``timestamp`` and
    ``index`` are required. Units are stripped (``87 %``, ``350.12 W``,
    ``1980 MHz``; ``30000 MiB`` becomes 30000 * 2**20 bytes), also for ``csv,nounits``
    where the unit is only in the header. ``[N/A]``, ``[Not Supported]`` and any
    other bracketed value read as nan (0 for memory). **Timestamps**
    (``2026/11/29 12:00:01.123``) carry no zone: nvidia-smi writes the local time
    of the machine that recorded them, and they are read in this agent's local
    timezone; set ``TZ`` to the recording machine's zone when they differ.

A line that cannot be parsed is skipped, counted (``bad_lines``) and logged with
its line number (the first few, then every 100th); it is never fatal.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from flamehouse.agent.gpu import GpuCounters, GpuReading
from flamehouse.agent.model import GpuDeviceSample, GpuProcessSample

log = logging.getLogger(__name__)

#: Bytes read per file per poll at most, so a long backlog is consumed over several polls.
_MAX_READ = 8 << 20
#: Bad lines and read errors: the first few are logged, then every this many.
_LOG_FIRST, _LOG_EVERY = 5, 100

#: Row field → header names nvidia-smi may print for it, preferred first.
_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("timestamp",),
    "index": ("index",),
    "uuid": ("uuid",),
    "name": ("name",),
    "sm_util": ("utilization.gpu",),
    "mem_util": ("utilization.memory",),
    "mem_used_bytes": ("memory.used",),
    "mem_total_bytes": ("memory.total",),
    "power_watts": ("power.draw", "power.draw.instant", "power.draw.average"),
    "temperature_c": ("temperature.gpu",),
    "sm_clock_mhz": ("clocks.sm", "clocks.current.sm"),
}
_HEADER_NAME = re.compile(r"^\s*(.*?)\s*(?:\[(.*)\])?\s*$")
_NUMBER = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)$")
_UNIT_SCALE = {"": 1, "%": 1, "W": 1, "MHz": 1, "C": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")

Row = GpuDeviceSample | GpuProcessSample


class BadLine(ValueError):
    """A replay line that cannot be used; the message says why."""


class ReplaySource:
    """GPU samples from a JSON-lines or nvidia-smi CSV file, followed as it grows.

    ``host_gpus`` maps device index → UUID for rows that carry no UUID and whose
    index no device row of the file has named yet.
    """

    def __init__(self, path: str | os.PathLike[str], *, host_gpus: Mapping[int, str] | None = None) -> None:
        self.path = Path(path)
        self.name = f"replay:{self.path}"
        self.counters = GpuCounters()
        self._follower = _Follower(self.path)
        self._parser = _Parser(host_gpus or {})
        self._closed = False

    def poll(self, now: float) -> GpuReading:
        """Every sample in the lines completed since the previous poll."""
        self.counters.polls += 1
        if self._closed:
            return GpuReading()
        try:
            for started_over, lines in self._follower.chunks():
                if started_over:
                    self._parser.restart()
                for number, text in lines:
                    try:
                        self._parser.feed(text)
                    except BadLine as exc:
                        self._bad_line(number, str(exc), text)
        except OSError as exc:
            self.counters.errors += 1
            if _should_log(self.counters.errors):
                log.warning("gpu replay: cannot read: file=%s error=%s", self.path, exc)
        devices, processes = self._parser.take()
        self.counters.device_samples += len(devices)
        self.counters.process_samples += len(processes)
        return GpuReading(devices, processes)

    def close(self) -> None:
        """Closes the file; later polls return nothing."""
        self._closed = True
        self._follower.close()

    def _bad_line(self, number: int, reason: str, text: str) -> None:
        self.counters.bad_lines += 1
        count = self.counters.bad_lines
        if _should_log(count):
            more = " (further bad lines: every 100th is logged)" if count == _LOG_FIRST else ""
            where = f"line={number} reason={reason} text={text[:120]!r}"
            log.warning("gpu replay: bad line skipped: file=%s %s bad_lines=%d%s", self.path, where, count, more)


def _should_log(count: int) -> bool:
    return count <= _LOG_FIRST or count % _LOG_EVERY == 0


class _Follower:
    """Complete lines of a file as it grows, across truncation and replacement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._position = 0
        self._partial = b""
        self._line = 0
        self._drained = False
        self._waiting = False

    def chunks(self) -> Iterator[tuple[bool, list[tuple[int, str]]]]:
        """``(started_over, [(line number, text), ...])`` in file order; ``started_over``
        marks lines from the start of a (new or truncated) file."""
        if self._file is None:
            if self._open():
                yield True, self._read()
            return
        if os.fstat(self._file.fileno()).st_size < self._position:
            log.info("gpu replay: file truncated, reading it from the start: file=%s", self.path)
            self._rewind()
            yield True, self._read()
            return
        lines = self._read()
        if self._drained and self._replaced():
            if self._partial:  # the old file will not grow any more: its last line is complete
                self._line += 1
                lines.append((self._line, self._partial.decode("utf-8", errors="replace")))
            log.info("gpu replay: file replaced, reading the new one: file=%s", self.path)
            self.close()
            yield False, lines
            if self._open():
                yield True, self._read()
            return
        yield False, lines

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> bool:
        try:
            self._file = self.path.open("rb")
        except FileNotFoundError:
            if not self._waiting:
                log.info("gpu replay: waiting for the file to appear: file=%s", self.path)
                self._waiting = True
            return False
        stat = os.fstat(self._file.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        self._waiting = False
        self._rewind()
        log.info("gpu replay: following file=%s", self.path)
        return True

    def _rewind(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._position, self._partial, self._line = 0, b"", 0

    def _replaced(self) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False  # moved away and not yet re-created: keep the old one
        return (stat.st_dev, stat.st_ino) != self._identity

    def _read(self) -> list[tuple[int, str]]:
        assert self._file is not None
        data = self._file.read(_MAX_READ)
        self._position += len(data)
        self._drained = len(data) < _MAX_READ
        *complete, self._partial = (self._partial + data).split(b"\n")
        lines = []
        for raw in complete:
            self._line += 1
            lines.append((self._line, raw.decode("utf-8", errors="replace").rstrip("\r")))
        return lines


class _Parser:
    """Turns lines into samples; knows the file's format and its CSV header."""

    def __init__(self, host_gpus: Mapping[int, str]) -> None:
        self._uuids = dict(host_gpus)
        self._format: str | None = None
        self._columns: dict[str, tuple[int, str]] | None = None
        self._width = 0
        self._devices: list[GpuDeviceSample] = []
        self._processes: list[GpuProcessSample] = []

    def restart(self) -> None:
        """A new file (or the same one truncated): detect its format again."""
        self._format, self._columns = None, None

    def take(self) -> tuple[tuple[GpuDeviceSample, ...], tuple[GpuProcessSample, ...]]:
        devices, processes = tuple(self._devices), tuple(self._processes)
        self._devices.clear()
        self._processes.clear()
        return devices, processes

    def feed(self, text: str) -> None:
        """Parses one line; raises :class:`BadLine`."""
        line = text.strip()
        if not line:
            return
        if self._format is None:
            self._format = _detect(line)
        if self._format == "json":
            self._add(parse_json_row(line, self._uuids))
            return
        fields = next(csv.reader([line], skipinitialspace=True))
        if fields and fields[0].strip().lower() == "timestamp":  # the header, first or printed again
            self._columns = None
            self._columns, self._width = csv_columns(fields), len(fields)
            return
        if self._columns is None:
            raise BadLine("CSV row before a valid header")
        if len(fields) != self._width:
            raise BadLine(f"{len(fields)} fields where the header has {self._width}")
        self._add(parse_csv_row(fields, self._columns, self._uuids))

    def _add(self, row: Row) -> None:
        if isinstance(row, GpuDeviceSample):
            if row.uuid:
                self._uuids[row.index] = row.uuid
            self._devices.append(row)
        else:
            self._processes.append(row)


def _detect(line: str) -> str:
    if line.startswith("{"):
        return "json"
    if line.lower().startswith("timestamp"):
        return "csv"
    raise BadLine("neither a JSON object nor an nvidia-smi CSV header (format not detected yet)")


def parse_json_row(line: str, uuids: Mapping[int, str]) -> Row:
    """One JSON-lines row (see the module docstring); raises :class:`BadLine`."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise BadLine("not a JSON object")
    second = int(_number(doc, "time", required=True))
    if second <= 0:
        raise BadLine('"time" must be unix seconds')
    index = _whole(doc, "index", required=True)
    uuid = _string(doc, "uuid") or uuids.get(index, "")
    if "pid" in doc:
        pid = _whole(doc, "pid", required=True)
        if pid <= 0:
            raise BadLine('"pid" must be positive')
        return GpuProcessSample(second, pid, index, uuid, _number(doc, "sm_util"), _whole(doc, "mem_used_bytes"))
    return GpuDeviceSample(
        time=second,
        index=index,
        uuid=uuid,
        name=_string(doc, "name"),
        sm_util=_number(doc, "sm_util", required=True),
        mem_util=_number(doc, "mem_util"),
        mem_used_bytes=_whole(doc, "mem_used_bytes"),
        mem_total_bytes=_whole(doc, "mem_total_bytes"),
        power_watts=_number(doc, "power_watts"),
        temperature_c=_number(doc, "temperature_c"),
        sm_clock_mhz=_number(doc, "sm_clock_mhz"),
    )


def _number(doc: dict[str, Any], key: str, *, required: bool = False) -> float:
    value = doc.get(key)
    if value is None:
        if required:
            raise BadLine(f'"{key}" is required')
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isinf(value):
        raise BadLine(f'"{key}" must be a number, got {value!r}')
    if required and math.isnan(value):
        raise BadLine(f'"{key}" must be a number, got NaN')
    return float(value)


def _whole(doc: dict[str, Any], key: str, *, required: bool = False) -> int:
    value = doc.get(key)
    if value is None and not required:
        return 0
    number = _number(doc, key, required=True)
    if number < 0 or number != int(number):
        raise BadLine(f'"{key}" must be a whole number >= 0, got {value!r}')
    return int(number)


def _string(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine(f'"{key}" must be a string, got {value!r}')
    return value


def csv_columns(header: list[str]) -> dict[str, tuple[int, str]]:
    """Row field → (position, unit in the header) for an nvidia-smi CSV header."""
    found: dict[str, tuple[int, str]] = {}
    for position, text in enumerate(header):
        match = _HEADER_NAME.match(text)
        assert match is not None  # the pattern matches any text
        found.setdefault(match.group(1).lower(), (position, match.group(2) or ""))
    columns: dict[str, tuple[int, str]] = {}
    for field, names in _CSV_COLUMNS.items():
        name = next((n for n in names if n in found), None)
        if name is not None:
            columns[field] = found[name]
    missing = [name for name in ("time", "index") if name not in columns]
    if missing:
        raise BadLine(f"CSV header lacks {' and '.join(_CSV_COLUMNS[m][0] for m in missing)}")
    return columns


def parse_csv_row(fields: list[str], columns: Mapping[str, tuple[int, str]], uuids: Mapping[int, str]) -> Row:
    """One nvidia-smi CSV data row; raises :class:`BadLine`."""

    def value(field: str) -> str:
        return fields[columns[field][0]].strip() if field in columns else ""

    def number(field: str) -> float:
        return _csv_number(value(field), columns[field][1], field) if field in columns else math.nan

    def whole(field: str) -> int:
        found = number(field)
        return 0 if math.isnan(found) else round(found)

    try:
        index = int(value("index"))
    except ValueError:
        raise BadLine(f"index {value('index')!r} is not a whole number") from None
    return GpuDeviceSample(
        time=int(_csv_time(value("time"))),
        index=index,
        uuid=value("uuid") or uuids.get(index, ""),
        name=value("name"),
        sm_util=number("sm_util"),
        mem_util=number("mem_util"),
        mem_used_bytes=whole("mem_used_bytes"),
        mem_total_bytes=whole("mem_total_bytes"),
        power_watts=number("power_watts"),
        temperature_c=number("temperature_c"),
        sm_clock_mhz=number("sm_clock_mhz"),
    )


def _csv_number(text: str, header_unit: str, field: str) -> float:
    """``87 %`` → 87.0, ``30000 MiB`` → bytes; ``[N/A]`` and the like → nan."""
    if not text or text.startswith("[") or text.upper() == "N/A":
        return math.nan
    match = _NUMBER.match(text)
    if match is None:
        raise BadLine(f"{field}: {text!r} is not a number")
    unit = match.group(2) or header_unit
    if unit not in _UNIT_SCALE:
        raise BadLine(f"{field}: unknown unit in {text!r}")
    return float(match.group(1)) * _UNIT_SCALE[unit]


def _csv_time(text: str) -> float:
    """nvidia-smi's zone-less timestamp, read as this machine's local time."""
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).timestamp()  # naive: local time, on purpose
        except ValueError:
            continue
    raise BadLine(f"timestamp {text!r} is not YYYY/MM/DD HH:MM:SS.mmm")

"""Plain-text rendering of API results for the terminal (``flamehouse query top|lines|diff``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

_ELLIPSIS = "…"
_HEADERS = ("SELF", "SELF%", "TOTAL", "TOTAL%", "FUNCTION", "FILE")
_MIN_TEXT = 8


def shorten_left(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters, marked with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[len(text) - width :]
    return _ELLIPSIS + text[len(text) - width + 1 :]


def shorten_right(text: str, width: int) -> str:
    """``text`` cut from the right to ``width`` characters, marked with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + _ELLIPSIS


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def render_top(result: Mapping[str, Any], width: int = 100) -> str:
    """A table of ``/api/v1/top``'s result: SELF, SELF%, TOTAL, TOTAL%, FUNCTION, FILE.

    Percentages are of ``total_samples``. FUNCTION and FILE share what is left
    of ``width``; a long file path keeps its right end, a long function name
    its left end.
    """
    total = int(result.get("total_samples", 0))
    functions: Sequence[Mapping[str, Any]] = result.get("functions", [])
    lines = [f"total samples: {total}"]
    if not functions:
        lines.append("no samples in this range")
        return "\n".join(lines) + "\n"
    cells = [
        (
            str(int(f["self"])),
            _percent(int(f["self"]), total),
            str(int(f["total"])),
            _percent(int(f["total"]), total),
            str(f["function"]),
            str(f["file"]),
        )
        for f in functions
    ]
    lines.extend(_table(_HEADERS, cells, width))
    return "\n".join(lines) + "\n"


def render_lines(
    result: Mapping[str, Any],
    *,
    price_core_hour: float | None = None,
    price_gpu_hour: float | None = None,
    width: int = 120,
) -> str:
    """A table of ``/api/v1/lines``'s result: SELF, CPU-s, GPU-busy-s, GPU-idle-s, FUNCTION, FILE:LINE.

    With ``price_core_hour``, a ``CPU $`` column (``cpu_seconds / 3600 * price``);
    with ``price_gpu_hour``, a ``GPU-idle $`` column (``gpu_idle_seconds / 3600 *
    price``): the money the GPU time wasted at that line cost. Both come before
    FUNCTION, and a last line sums them over the lines shown.
    """
    total = int(result.get("total_samples", 0))
    rows: Sequence[Mapping[str, Any]] = result.get("lines", [])
    out = [f"total samples: {total} (rate {float(result.get('rate', 0)):g}/s)"]
    if not rows:
        out.append("no samples in this range")
        return "\n".join(out) + "\n"
    wanted = (("CPU $", "cpu_seconds", price_core_hour), ("GPU-idle $", "gpu_idle_seconds", price_gpu_hour))
    prices = [(header, key, price) for header, key, price in wanted if price is not None]
    headers = ("SELF", "CPU-s", "GPU-busy-s", "GPU-idle-s", *(p[0] for p in prices), "FUNCTION", "FILE:LINE")
    cells = [
        (
            str(int(r["self"])),
            _seconds(r["cpu_seconds"]),
            _seconds(r["gpu_busy_seconds"]),
            _seconds(r["gpu_idle_seconds"]),
            *(_money(float(r[key]) / 3600 * price) for _, key, price in prices),
            str(r["function"]),
            f"{r['file']}:{int(r['line'])}",
        )
        for r in rows
    ]
    out.extend(_table(headers, cells, width))
    if prices:
        sums = (f"{h} {_money(sum(float(r[k]) for r in rows) / 3600 * p)}" for h, k, p in prices)
        out.append(f"sum over these {len(rows)} lines: " + ", ".join(sums))
    return "\n".join(out) + "\n"


def render_diff(result: Mapping[str, Any], width: int = 120) -> str:
    """A table of ``/api/v1/diff``'s ``changes``: BASE%, COMP%, DELTA, BASE, COMP, FUNCTION, FILE.

    Shares are self samples over each side's own total (as the API gives
    them), the largest change first; DELTA is in percentage points.
    """
    base_total, comparison_total = int(result.get("base_total", 0)), int(result.get("comparison_total", 0))
    changes: Sequence[Mapping[str, Any]] = result.get("changes", [])
    out = [f"base: {base_total} samples, comparison: {comparison_total} samples (self share of each side's total)"]
    if not changes:
        out.append("no samples on either side")
        return "\n".join(out) + "\n"
    headers = ("BASE%", "COMP%", "DELTA", "BASE", "COMP", "FUNCTION", "FILE")
    cells = [
        (
            f"{100 * float(c['base_share']):.1f}%",
            f"{100 * float(c['comparison_share']):.1f}%",
            f"{100 * float(c['delta']):+.1f}pp",
            str(int(c.get("base_self", 0))),
            str(int(c.get("comparison_self", 0))),
            str(c["function"]),
            str(c["file"]),
        )
        for c in changes
    ]
    out.extend(_table(headers, cells, width))
    return "\n".join(out) + "\n"


def _seconds(value: Any) -> str:
    return f"{float(value):.2f}"


def _money(value: float) -> str:
    return f"{value:.4f}"


def _table(headers: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[str]:
    """Header and rows: right-aligned number columns, then a function and a location column.

    The two text columns share what is left of ``width``; the function keeps
    its left end, the location (a file path) its right end.
    """
    numbers = len(headers) - 2
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(numbers)]
    fixed = sum(widths) + 2 * len(widths)
    text_width = max(width - fixed - 2, 2 * _MIN_TEXT)
    longest_function = max(len(headers[-2]), *(len(row[-2]) for row in cells))
    function_width = min(longest_function, max(text_width // 2, text_width - max(len(row[-1]) for row in cells)))
    function_width = max(function_width, min(_MIN_TEXT, longest_function))
    file_width = max(text_width - function_width, _MIN_TEXT)
    lines = []
    for row in [headers, *cells]:
        values = "  ".join(value.rjust(w) for value, w in zip(row[:numbers], widths, strict=True))
        function = shorten_right(row[-2], function_width).ljust(function_width)
        lines.append(f"{values}  {function}  {shorten_left(row[-1], file_width)}".rstrip())
    return lines

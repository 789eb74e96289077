"""Plain-text rendering of API results for the terminal (``flamehouse query``)."""

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
    widths = [max(len(_HEADERS[i]), *(len(row[i]) for row in cells)) for i in range(4)]
    fixed = sum(widths) + 2 * len(widths)
    text_width = max(width - fixed - 2, 2 * _MIN_TEXT)
    longest_function = max(len(_HEADERS[4]), *(len(row[4]) for row in cells))
    function_width = min(longest_function, max(text_width // 2, text_width - max(len(row[5]) for row in cells)))
    function_width = max(function_width, min(_MIN_TEXT, longest_function))
    file_width = max(text_width - function_width, _MIN_TEXT)
    for row in [_HEADERS, *cells]:
        numbers = "  ".join(value.rjust(w) for value, w in zip(row[:4], widths, strict=True))
        function = shorten_right(row[4], function_width).ljust(function_width)
        lines.append(f"{numbers}  {function}  {shorten_left(row[5], file_width)}".rstrip())
    return "\n".join(lines) + "\n"

"""Time range parsing for the read API: ``from``/``to`` as the user types them.

Accepted forms of one instant:

* RFC 3339 with a UTC offset: ``2026-11-29T12:00:00Z``, ``2026-11-29T14:00:00.5+02:00``;
* unix seconds: ``1764417600`` or ``1764417600.25``;
* ``now``, or ``now-<N><unit>`` with unit ``s``, ``m``, ``h``, ``d`` or ``w`` (``now-15m``).

A range is half-open, ``[from, to)``, in whole seconds because samples are
stored per second.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime

from flamehouse.collector import QueryError

log = logging.getLogger(__name__)

#: What every time error message lists, so the user sees how to fix it.
ACCEPTED_FORMS = (
    "RFC 3339 with an offset (2026-11-29T12:00:00Z), unix seconds (1764417600), "
    "'now', or 'now-<N><unit>' with unit s, m, h, d or w (now-15m)"
)

#: Longest range a query may cover.
MAX_SPAN_SECONDS = 400 * 86400
#: ``DateTime`` columns hold unsigned 32-bit seconds.
MAX_TIMESTAMP = 2**32 - 1

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"now(?:\s*-\s*([0-9]{1,9})\s*([smhdw]))?")
_UNIX = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?)([Zz]|[+-][0-9]{2}:[0-9]{2})?",
)


def parse_time(text: str, now: float) -> float:
    """Parses one instant into unix seconds; ``now`` is the reference for relative forms.

    Raises :class:`~flamehouse.collector.QueryError` naming the accepted forms.
    """
    value = text.strip()
    if not value:
        raise QueryError(f"empty time: expected {ACCEPTED_FORMS}")
    relative = _RELATIVE.fullmatch(value)
    if relative:
        if relative.group(1) is None:
            return now
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    if _UNIX.fullmatch(value):
        return float(value)
    rfc = _RFC3339.fullmatch(value)
    if rfc:
        return _parse_rfc3339(value, rfc)
    raise QueryError(f"invalid time {text!r}: expected {ACCEPTED_FORMS}")


def _parse_rfc3339(text: str, match: re.Match[str]) -> float:
    date, clock, offset = match.groups()
    if offset is None:
        raise QueryError(f"time {text!r} has no UTC offset: add Z or +hh:mm, as in 2026-11-29T12:00:00Z")
    whole, _, fraction = clock.partition(".")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        instant = datetime.fromisoformat(f"{date}T{whole}{offset}")
    except ValueError as exc:
        raise QueryError(f"invalid time {text!r}: {exc}; expected {ACCEPTED_FORMS}") from exc
    return instant.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def resolve_range(
    from_: str | None,
    to: str | None,
    now: float,
    default_span: int = 3600,
) -> tuple[int, int]:
    """Resolves optional ``from``/``to`` into whole unix seconds ``[start, end)``.

    ``from`` defaults to ``now - default_span`` and ``to`` to ``now``; an empty
    string counts as absent. The start is rounded down and the end up, so a
    sample in a partly covered second is included. Raises
    :class:`~flamehouse.collector.QueryError` when ``from`` is not before ``to``,
    the span exceeds :data:`MAX_SPAN_SECONDS` or either end is outside the
    range a ``DateTime`` column holds.
    """
    end = now if to is None or not to.strip() else parse_time(to, now)
    start = end - default_span if from_ is None or not from_.strip() else parse_time(from_, now)
    if not start < end:
        raise QueryError(f"'from' must be before 'to' (got from={from_!r}, to={to!r})")
    if end - start > MAX_SPAN_SECONDS:
        days = MAX_SPAN_SECONDS // 86400
        raise QueryError(f"time range is {(end - start) / 86400:.1f} days; at most {days} days allowed")
    lo, hi = math.floor(start), math.ceil(end)
    if lo < 0 or hi > MAX_TIMESTAMP:
        raise QueryError(f"time range must lie between 1970-01-01 and 2106-02-07 (got {lo}..{hi})")
    log.debug("time range from=%d to=%d", lo, hi)
    return lo, hi

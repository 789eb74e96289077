"""Validated ``WHERE`` clauses over ``samples``: selector, time range and kind.

Every read query starts here: :class:`FilterBuilder` turns the user's
selector, ``from``/``to`` and ``kind`` into one :class:`SampleFilter` whose SQL
holds only bound ``{name:Type}`` placeholders, and raises
:class:`~flamehouse.collector.QueryError` for anything malformed. The time
range is always bound as ``t_from``/``t_to`` (unix seconds, half-open), which
the GPU queries reuse for their own tables.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from flamehouse.collector import QueryError, StoreError
from flamehouse.collector.selector import Selector, parse_selector, to_sql
from flamehouse.collector.store import Store
from flamehouse.collector.timespec import resolve_range

log = logging.getLogger(__name__)

KINDS = ("cpu", "wall")

_RE2_ERROR = re.compile(r"cannot compile re2: (?:.*?, error: )?(.*?)(?:\. Look at|$)", re.S)
_PATTERN_CACHE = 1024


@dataclass(frozen=True, slots=True)
class SampleFilter:
    """A validated ``WHERE`` clause over ``samples`` and its parameters."""

    sql: str
    params: dict[str, Any]
    #: First second of the range (inclusive), unix seconds.
    start: int
    #: End of the range (exclusive), unix seconds.
    end: int
    #: True when the selector has no matchers (it selects every sample).
    everything: bool


def check_limit(name: str, value: int, maximum: int) -> None:
    """Raises QueryError unless ``1 <= value <= maximum``."""
    if not 1 <= value <= maximum:
        raise QueryError(f"{name} must be between 1 and {maximum}, got {value}")


class FilterBuilder:
    """Builds :class:`SampleFilter` objects; remembers which regexes ClickHouse accepted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._valid_patterns: set[str] = set()

    def build(
        self, selector: str, from_: str | None, to: str | None, now: float | None, kind: str | None
    ) -> SampleFilter:
        """Validates the common inputs into one ``WHERE`` clause over ``samples``."""
        if kind is not None and kind not in KINDS:
            raise QueryError(f"invalid kind {kind!r}: expected one of {', '.join(KINDS)}")
        parsed = parse_selector(selector)
        start, end = resolve_range(from_, to, time.time() if now is None else now)
        self._check_patterns(parsed)
        selector_sql, params = to_sql(parsed, "s")
        clauses = ["ts >= toDateTime({t_from:UInt32})", "ts < toDateTime({t_to:UInt32})"]
        params.update(t_from=start, t_to=end)
        if kind is not None:
            clauses.append("kind = {kind:String}")
            params["kind"] = kind
        clauses.append(f"({selector_sql})")
        return SampleFilter(" AND ".join(clauses), params, start, end, not parsed.matchers)

    def _check_patterns(self, selector: Selector) -> None:
        """Asks ClickHouse whether each regex compiles, so a bad one is a 400, not a store failure."""
        for matcher in selector.matchers:
            if not matcher.op.is_regex or matcher.value in self._valid_patterns:
                continue
            try:
                self.store.query("SELECT match('', concat('^(?:', {p:String}, ')$'))", {"p": matcher.value})
            except StoreError as exc:
                found = _RE2_ERROR.search(str(exc))
                if found is None:
                    raise
                raise QueryError(
                    f"invalid regular expression for {matcher.name}: {found.group(1)} (RE2 syntax)"
                ) from exc
            if len(self._valid_patterns) >= _PATTERN_CACHE:
                self._valid_patterns.clear()
            self._valid_patterns.add(matcher.value)

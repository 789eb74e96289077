"""Validated ``WHERE`` clauses over ``samples``: selector, time range, kind and GPU state.

Every read query starts here: :class:`FilterBuilder` turns the user's
selector, ``from``/``to``, ``kind`` and ``gpu_state`` into one
:class:`SampleFilter` whose SQL holds only bound ``{name:Type}`` placeholders,
and raises :class:`~flamehouse.collector.QueryError` for anything malformed.
``kind`` and ``gpu_state`` may be given as parameters or inside the selector
(``{service="x", gpu_state="idle"}`` is ``gpu_state=idle``); given both ways
they must agree. The time range is always bound as ``t_from``/``t_to`` (unix
seconds, half-open), which the GPU queries reuse for their own tables.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from flamehouse.collector import QueryError, StoreError
from flamehouse.collector.gpu_state import DEFAULT_IDLE_BELOW, GPU_STATES, GpuFilter, gpu_filter
from flamehouse.collector.selector import KINDS, Selector, parse_selector, to_sql
from flamehouse.collector.store import Store
from flamehouse.collector.timespec import resolve_range

log = logging.getLogger(__name__)

__all__ = ["KINDS", "FilterBuilder", "SampleFilter", "check_limit", "merge_param"]

_RE2_ERROR = re.compile(r"cannot compile re2: (?:.*?, error: )?(.*?)(?:\. Look at|$)", re.S)
_PATTERN_CACHE = 1024
_TIME_SQL = "ts >= toDateTime({t_from:UInt32}) AND ts < toDateTime({t_to:UInt32})"


@dataclass(frozen=True, slots=True)
class SampleFilter:
    """A validated ``WHERE`` clause over ``samples`` and its parameters."""

    #: Time range, kind and selector: ``WHERE`` over ``samples`` (or ``samples_1m``).
    sql: str
    params: dict[str, Any]
    #: First second of the range (inclusive), unix seconds.
    start: int
    #: End of the range (exclusive), unix seconds.
    end: int
    #: True when nothing but time narrows the selection (no label matcher, no kind).
    everything: bool
    #: Kind and selector without the time range, for tables read over other ranges (see :mod:`.rollup`).
    match_sql: str = "1"
    #: The kind selected (by parameter or selector); ``None`` for every kind.
    kind: str | None = None
    #: The GPU-state filter of a profile query (``any`` elsewhere).
    gpu: GpuFilter = field(default_factory=GpuFilter)


def check_limit(name: str, value: int, maximum: int) -> None:
    """Raises QueryError unless ``1 <= value <= maximum``."""
    if not 1 <= value <= maximum:
        raise QueryError(f"{name} must be between 1 and {maximum}, got {value}")


def merge_param(name: str, given: str | None, in_selector: str | None, allowed: tuple[str, ...]) -> str | None:
    """One value for a parameter that may also be written in the selector (``kind``, ``gpu_state``).

    Raises QueryError when ``given`` is not one of ``allowed`` or the two disagree;
    ``None`` when neither gives it.
    """
    if given is not None and given not in allowed:
        raise QueryError(f"invalid {name} {given!r}: expected one of {', '.join(allowed)}")
    if given is not None and in_selector is not None and given != in_selector:
        raise QueryError(
            f"{name} is {given!r} as a parameter but {in_selector!r} in the selector: "
            "give it in one place, or the same value in both"
        )
    return given if given is not None else in_selector


class FilterBuilder:
    """Builds :class:`SampleFilter` objects; remembers which regexes ClickHouse accepted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._valid_patterns: set[str] = set()

    def build(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        now: float | None,
        kind: str | None,
        *,
        default_kind: str | None = None,
    ) -> SampleFilter:
        """The common inputs as one ``WHERE`` clause over ``samples``, for queries without a GPU state.

        ``kind`` may also be written in the selector (``{kind="wall"}``); with
        neither, ``default_kind`` (``None``: every kind). ``gpu_state`` in the
        selector is refused: these queries do not classify samples by GPU state.
        """
        kind = merge_param("kind", kind, None, KINDS)
        parsed = parse_selector(selector)
        if parsed.param("gpu_state") is not None:
            raise QueryError("this query does not filter by gpu_state: remove gpu_state from the selector")
        chosen = merge_param("kind", kind, parsed.param("kind"), KINDS)
        return self._filter(parsed, from_, to, now, kind=default_kind if chosen is None else chosen, gpu=GpuFilter())

    def profile(
        self,
        selector: str,
        from_: str | None,
        to: str | None,
        now: float | None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float = DEFAULT_IDLE_BELOW,
    ) -> SampleFilter:
        """The filter of a profile query (top, flame graph, lines, diff): one kind, a GPU state.

        ``kind`` (default ``cpu``) and ``gpu_state`` (default ``any``) come from
        the parameters or the selector (``{gpu_state="idle"}`` is ``gpu_state=idle``);
        both at once must agree, else QueryError.
        """
        merge_param("kind", kind, None, KINDS)
        merge_param("gpu_state", gpu_state, None, GPU_STATES)
        parsed = parse_selector(selector)
        chosen_kind = merge_param("kind", kind, parsed.param("kind"), KINDS) or "cpu"
        state = merge_param("gpu_state", gpu_state, parsed.param("gpu_state"), GPU_STATES) or "any"
        return self._filter(parsed, from_, to, now, kind=chosen_kind, gpu=gpu_filter(state, gpu_idle_below))

    def _filter(
        self,
        parsed: Selector,
        from_: str | None,
        to: str | None,
        now: float | None,
        *,
        kind: str | None,
        gpu: GpuFilter,
    ) -> SampleFilter:
        start, end = resolve_range(from_, to, time.time() if now is None else now)
        labels = parsed.labels_only()
        self._check_patterns(labels)
        selector_sql, params = to_sql(labels, "s")
        match: list[str] = []
        if kind is not None:
            match.append("kind = {kind:String}")
            params["kind"] = kind
        match.append(f"({selector_sql})")
        params.update(t_from=start, t_to=end)
        match_sql = " AND ".join(match)
        everything = not labels.matchers and kind is None
        return SampleFilter(f"{_TIME_SQL} AND {match_sql}", params, start, end, everything, match_sql, kind, gpu)

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

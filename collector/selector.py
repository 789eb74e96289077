"""The selector language and its translation to a bound-parameter SQL filter.

Grammar (as in Prometheus and Perforator)::

    selector := "" | "{" [ matcher { "," matcher } [ "," ] ] "}"
    matcher  := NAME op STRING
    op       := "=" | "!=" | "=~" | "!~"
    NAME     := [A-Za-z_][A-Za-z0-9_]*
    STRING   := '"' { char | '\\"' | '\\\\' | '\\n' | '\\t' | '\\u' HEX HEX HEX HEX } '"'

Whitespace may surround every token. ``{}`` and the empty string match every
sample.

Special labels: ``service``, ``job``, ``host``, ``pid``, ``rank`` and
``thread`` are columns of ``samples``; ``kind`` and ``gpu_state`` are the query
parameters of the same names written inside the selector
(:data:`PARAM_LABELS`): they take only ``=`` and one of their values
(``kind="wall"``, ``gpu_state="idle"``), and the query layer merges them with
the parameters (:meth:`Selector.param`); any other name reads the process's
``labels`` map. Regular expressions follow ClickHouse ``match()`` (RE2) semantics and,
like Prometheus, are anchored to the whole value: ``=~"gpu-.*"`` becomes
``match(host, concat('^(?:', {s0_v:String}, ')$'))``. This module only rejects
patterns that are obviously broken (too long, unbalanced groups or classes, a
dangling backslash); the query layer asks ClickHouse itself whether a pattern
compiles. A label that is absent from a sample has the value ``""``, so
``team=""`` selects samples without a ``team`` label.

Every value and every map key reaches SQL as a bound parameter; the SQL text
depends only on the number and kind of matchers and which built-in labels they
name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flamehouse.collector import SelectorError
from flamehouse.collector.gpu_state import GPU_STATES

log = logging.getLogger(__name__)

#: Longest selector text accepted.
MAX_SELECTOR_LENGTH = 4096
#: Longest regular expression accepted in one matcher.
MAX_REGEX_LENGTH = 512
#: Sample kinds: ``cpu`` (active threads) and ``wall`` (all threads).
KINDS = ("cpu", "wall")

LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Labels stored as columns of ``samples``, with the SQL that reads them as a string.
COLUMN_LABELS: dict[str, str] = {
    "service": "service",
    "job": "job",
    "host": "host",
    "pid": "toString(pid)",
    "rank": "rank",
    "thread": "thread",
    "kind": "toString(kind)",
}

#: Labels that are query parameters written in the selector: only ``=``, and one of these values.
PARAM_LABELS: dict[str, tuple[str, ...]] = {"kind": KINDS, "gpu_state": GPU_STATES}

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class Op(Enum):
    """A matcher's comparison."""

    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"

    @property
    def is_regex(self) -> bool:
        return self in (Op.RE, Op.NRE)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One ``name op "value"`` term."""

    #: Label name: a built-in column label or a key of the ``labels`` map.
    name: str
    op: Op
    #: The literal value, or the regular expression for ``=~``/``!~``.
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of matchers; no matchers selects everything."""

    matchers: tuple[Matcher, ...] = ()

    def param(self, name: str) -> str | None:
        """The value of the parameter label ``name`` (``kind``, ``gpu_state``) given here, or ``None``.

        The parser guarantees such a label appears with ``=`` and one value only.
        """
        return next((m.value for m in self.matchers if m.name == name), None)

    def labels_only(self) -> Selector:
        """This selector without its parameter labels: the part that is a filter on label values."""
        return Selector(tuple(m for m in self.matchers if m.name not in PARAM_LABELS))

    def __str__(self) -> str:
        body = ", ".join(f"{m.name}{m.op.value}{_quote(m.value)}" for m in self.matchers)
        return "{" + body + "}"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


class _Parser:
    """A hand-written scanner and recursive-descent parser over the selector text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str, position: int | None = None) -> SelectorError:
        at = self.pos if position is None else position
        found = repr(self.text[at]) if at < len(self.text) else "end of input"
        return SelectorError(f"expected {expected}, found {found}", at)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        self.skip_space()
        if self.peek() != char:
            raise self.fail(f"'{char}'")
        self.pos += 1

    def parse(self) -> Selector:
        self.skip_space()
        if self.pos == len(self.text):
            return Selector()
        self.expect("{")
        matchers: list[Matcher] = []
        params: dict[str, str] = {}
        while True:
            self.skip_space()
            if self.peek() == "}":
                break
            start = self.pos
            matchers.append(self.matcher())
            name, value = matchers[-1].name, matchers[-1].value
            if name in PARAM_LABELS and params.setdefault(name, value) != value:
                raise SelectorError(f"{name} given twice with different values ({params[name]!r}, {value!r})", start)
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() != "}":
                raise self.fail("',' or '}'")
        self.pos += 1
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail("end of input after '}'")
        return Selector(tuple(matchers))

    def matcher(self) -> Matcher:
        name = self.name()
        self.skip_space()
        op_start = self.pos
        op = self.op()
        if name in PARAM_LABELS and op is not Op.EQ:
            raise SelectorError(f"expected '=' after {name}: it is a query parameter and takes one value", op_start)
        self.skip_space()
        start = self.pos
        value = self.string()
        allowed = PARAM_LABELS.get(name)
        if allowed is not None and value not in allowed:
            raise SelectorError(f"expected {name} to be one of {', '.join(allowed)}, found {value!r}", start)
        if op.is_regex:
            problem = regex_problem(value)
            if problem:
                raise SelectorError(f"invalid regular expression for {name}: {problem}", start)
        return Matcher(name, op, value)

    def name(self) -> str:
        match = LABEL_NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("a label name ([A-Za-z_][A-Za-z0-9_]*) or '}'")
        self.pos = match.end()
        return match.group()

    def op(self) -> Op:
        self.skip_space()
        two = self.text[self.pos : self.pos + 2]
        for op in (Op.RE, Op.NRE, Op.NE):
            if two == op.value:
                self.pos += 2
                return op
        if self.peek() == "=":
            self.pos += 1
            return Op.EQ
        raise self.fail("one of = != =~ !~")

    def string(self) -> str:
        self.skip_space()
        if self.peek() != '"':
            raise self.fail("a double-quoted string")
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("closing '\"'")
            self.pos += 1
            if char == '"':
                return "".join(out)
            out.append(self.escape() if char == "\\" else char)

    def escape(self) -> str:
        char = self.peek()
        if char in _ESCAPES:
            self.pos += 1
            return _ESCAPES[char]
        if char == "u":
            start = self.pos - 1
            code = self.hex4()
            if 0xDC00 <= code <= 0xDFFF:
                raise SelectorError("a \\u escape is a lone low surrogate", start)
            if 0xD800 <= code <= 0xDBFF:  # a UTF-16 pair spells one code point
                if self.text[self.pos : self.pos + 2] != "\\u":
                    raise self.fail("a \\u low surrogate after a high surrogate (4 hex digits)")
                self.pos += 1
                low = self.hex4()
                if not 0xDC00 <= low <= 0xDFFF:
                    raise SelectorError("expected a low surrogate (\\uDC00-\\uDFFF)", self.pos - 5)
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            return chr(code)
        raise self.fail('an escape: \\" \\\\ \\n \\t or \\u and 4 hex digits')

    def hex4(self) -> int:
        """Reads the ``u`` at the cursor and four hex digits after it."""
        digits = self.text[self.pos + 1 : self.pos + 5]
        if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
            self.pos += 5
            return int(digits, 16)
        raise self.fail("4 hex digits after \\u", self.pos + 1)


def parse_selector(text: str) -> Selector:
    """Parses selector text; raises :class:`~flamehouse.collector.SelectorError` with the position."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(f"selector longer than {MAX_SELECTOR_LENGTH} characters", MAX_SELECTOR_LENGTH)
    for position, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise SelectorError("a lone surrogate is not valid text", position)
    return _Parser(text).parse()


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is obviously not a valid RE2 expression, or ``None``.

    A conservative pre-check, not a compiler: it catches over-long patterns,
    a dangling backslash and unbalanced ``(``/``)`` or ``[``/``]``. Balanced
    groups also keep a pattern from escaping the ``^(?:...)$`` anchoring.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"longer than {MAX_REGEX_LENGTH} characters"
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("\\Q", i):  # \Q...\E quotes literal text
            close = pattern.find("\\E", i + 2)
            if close < 0:
                break
            i = close + 2
            continue
        if char == "\\":
            if i + 1 == len(pattern):
                return "ends with a lone backslash"
            i += 2
            continue
        if char == "[":
            end = _class_end(pattern, i)
            if end < 0:
                return f"'[' at offset {i} is never closed"
            i = end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return f"')' at offset {i} has no matching '('"
        i += 1
    return "unclosed '('" if depth else None


def _class_end(pattern: str, start: int) -> int:
    """Offset of the ``]`` closing the character class opened at ``start``, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading ']' is a literal
        i += 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if pattern.startswith("[:", i):  # POSIX class such as [:alpha:]
            close = pattern.find(":]", i + 2)
            if close >= 0:
                i = close + 2
                continue
        if char == "]":
            return i
        i += 1
    return -1


def label_sql(name: str, key_param: str) -> tuple[str, dict[str, Any]]:
    """SQL reading label ``name`` from ``samples`` as a string, with its parameters.

    Built-in labels are columns; any other name is looked up in the ``labels``
    map through the bound parameter ``key_param``.
    """
    column = COLUMN_LABELS.get(name)
    if column is not None:
        return column, {}
    return f"labels[{{{key_param}:String}}]", {key_param: name}


def to_sql(selector: Selector, param_prefix: str = "s") -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` fragment for ``selector`` and its bound parameters.

    Parameter names are ``{prefix}{i}_v`` (value) and ``{prefix}{i}_k`` (map
    key) for the i-th matcher. An empty selector yields ``"1"``. Parameter
    labels (``kind``, ``gpu_state``) are not filters on label values: pass
    :meth:`Selector.labels_only` (a ``ValueError`` otherwise).
    """
    if not LABEL_NAME.fullmatch(param_prefix):
        raise ValueError(f"param_prefix must be an identifier, got {param_prefix!r}")
    special = [m.name for m in selector.matchers if m.name in PARAM_LABELS]
    if special:
        raise ValueError(f"{special[0]} is a query parameter: read it with Selector.param, drop it with labels_only()")
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for i, matcher in enumerate(selector.matchers):
        expr, key_params = label_sql(matcher.name, f"{param_prefix}{i}_k")
        params.update(key_params)
        value = f"{param_prefix}{i}_v"
        params[value] = matcher.value
        if matcher.op is Op.EQ:
            clauses.append(f"{expr} = {{{value}:String}}")
        elif matcher.op is Op.NE:
            clauses.append(f"{expr} != {{{value}:String}}")
        else:
            negate = "NOT " if matcher.op is Op.NRE else ""
            clauses.append(f"{negate}match({expr}, concat('^(?:', {{{value}:String}}, ')$'))")
    return (" AND ".join(clauses) if clauses else "1"), params

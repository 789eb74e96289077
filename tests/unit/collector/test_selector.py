"""The selector parser and its SQL translation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamehouse.collector import QueryError, SelectorError
from flamehouse.collector.selector import (
    MAX_REGEX_LENGTH,
    MAX_SELECTOR_LENGTH,
    Matcher,
    Op,
    Selector,
    parse_selector,
    regex_problem,
    to_sql,
)


@pytest.mark.parametrize("text", ["", "   ", "{}", "{ }", " {\n} "])
def test_empty_selects_everything(text: str) -> None:
    selector = parse_selector(text)
    assert selector == Selector(())
    assert to_sql(selector) == ("1", {})


def test_all_operators_and_whitespace() -> None:
    selector = parse_selector(' { service = "trainer" , host=~"gpu-.*",rank!="0", team !~ "a|b" , } ')
    assert selector.matchers == (
        Matcher("service", Op.EQ, "trainer"),
        Matcher("host", Op.RE, "gpu-.*"),
        Matcher("rank", Op.NE, "0"),
        Matcher("team", Op.NRE, "a|b"),
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r'"a\\b"', "a\\b"),
        (r'"line\nnext\ttab"', "line\nnext\ttab"),
        (r'"\u00e9t\u00C9"', "étÉ"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        ('"raw ünïcode {},=~"', "raw ünïcode {},=~"),
        ('""', ""),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert parse_selector("{x=" + literal + "}").matchers == (Matcher("x", Op.EQ, value),)


def test_str_round_trips() -> None:
    selector = parse_selector(r'{a="q\"\\\n\t", b!~"x.*", c=~"", d!="é"}')
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ('{service"x"}', 8, "expected one of = != =~ !~"),
        ('{service=="x"}', 9, "expected a double-quoted string"),
        ('{service=x"}', 9, "expected a double-quoted string"),
        ('service="x"', 0, "expected '{'"),
        ('{1abc="x"}', 1, "expected a label name"),
        ('{a="x" b="y"}', 7, "expected ',' or '}'"),
        ('{a="x",,}', 7, "expected a label name"),
        ('{a="x"', 6, "expected ',' or '}'"),
        ('{a="x', 5, "expected closing '\"'"),
        ('{a="x"} extra', 8, "expected end of input after '}'"),
        (r'{a="\q"}', 5, "expected an escape"),
        (r'{a="\u12"}', 6, "expected 4 hex digits"),
        (r'{a="\udc00"}', 4, "lone low surrogate"),
        (r'{a="\ud83dx"}', 10, "low surrogate after a high surrogate"),
        ('{a=~"(x"}', 4, "invalid regular expression for a: unclosed '('"),
        ('{a=~"x)"}', 4, "')' at offset 1 has no matching '('"),
        ('{a=~"[x"}', 4, "'[' at offset 0 is never closed"),
        ('{a=~"x\\\\"}', 4, "lone backslash"),
        ('{a="\ud800"}', 4, "lone surrogate"),
    ],
)
def test_errors_name_position_and_expectation(text: str, position: int, expected: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert caught.value.position == position
    assert expected in str(caught.value)
    assert str(caught.value).endswith(f"at position {position}")
    assert isinstance(caught.value, QueryError)


def test_error_message_example_from_the_docs() -> None:
    with pytest.raises(SelectorError, match=r"^expected one of = != =~ !~, found '\"' at position 9$"):
        parse_selector('{service "x"}')


def test_length_limits() -> None:
    with pytest.raises(SelectorError, match="longer than"):
        parse_selector("{" + " " * MAX_SELECTOR_LENGTH + "}")
    long_regex = "a" * (MAX_REGEX_LENGTH + 1)
    with pytest.raises(SelectorError, match="longer than"):
        parse_selector('{a=~"' + long_regex + '"}')
    assert parse_selector('{a="' + long_regex + '"}').matchers[0].value == long_regex


@pytest.mark.parametrize(
    "pattern",
    ["gpu-.*", "a|b", "[]a]", "[^]a]", "[[:alpha:]]+", r"\(", r"[(]", r"\Q(\E", "(?i)x", r"\pL+", "(a(b)c)", ""],
)
def test_regex_precheck_accepts_valid_re2(pattern: str) -> None:
    assert regex_problem(pattern) is None


def test_sql_maps_columns_pid_and_map_keys() -> None:
    sql, params = to_sql(
        parse_selector('{service="s", pid="42", team=~"ml.*", thread!="w", host!~"h1"}'), param_prefix="p"
    )
    assert sql == (
        "service = {p0_v:String} AND toString(pid) = {p1_v:String} AND "
        "match(labels[{p2_k:String}], concat('^(?:', {p2_v:String}, ')$')) AND "
        "thread != {p3_v:String} AND NOT match(host, concat('^(?:', {p4_v:String}, ')$'))"
    )
    assert params == {"p0_v": "s", "p1_v": "42", "p2_k": "team", "p2_v": "ml.*", "p3_v": "w", "p4_v": "h1"}


def test_parameter_labels_are_read_not_filtered() -> None:
    selector = parse_selector('{service="x", gpu_state="idle", kind="wall", kind="wall"}')
    assert (selector.param("kind"), selector.param("gpu_state"), selector.param("job")) == ("wall", "idle", None)
    assert selector.labels_only() == Selector((Matcher("service", Op.EQ, "x"),))
    assert to_sql(selector.labels_only()) == ("service = {s0_v:String}", {"s0_v": "x"})
    with pytest.raises(ValueError, match="gpu_state is a query parameter"):
        to_sql(selector)
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ('{kind=~"c.*"}', 5, "expected '=' after kind: it is a query parameter"),
        ('{gpu_state != "idle"}', 11, "expected '=' after gpu_state"),
        ('{kind="gpu"}', 6, "expected kind to be one of cpu, wall, found 'gpu'"),
        ('{gpu_state="sleepy"}', 11, "expected gpu_state to be one of any, busy, idle, none"),
        ('{kind="cpu", a="b", kind="wall"}', 20, "kind given twice with different values ('cpu', 'wall')"),
    ],
)
def test_parameter_label_errors(text: str, position: int, expected: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert caught.value.position == position
    assert expected in str(caught.value)


def test_param_prefix_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="param_prefix"):
        to_sql(Selector(), param_prefix="x; DROP")


# --- properties ------------------------------------------------------------------------------------

_SELECTOR_ALPHABET = st.sampled_from([*'{}=!~",\\ ux0aZ_.*()[]', "\n", "é", "\t"])


@given(st.text(max_size=60) | st.text(alphabet=_SELECTOR_ALPHABET, max_size=60))
def test_random_text_raises_only_selector_error(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorError as exc:
        assert 0 <= exc.position <= max(len(text), MAX_SELECTOR_LENGTH)
    else:
        to_sql(selector.labels_only())


_NAMES = st.sampled_from(["service", "job", "host", "pid", "rank", "thread", "team", "env_x", "_k"])
_VALUES = st.text(min_size=1, max_size=20).filter(lambda v: not any("\ud800" <= c <= "\udfff" for c in v))
_SAFE_REGEX = st.from_regex(r"[a-z0-9.*+|-]{1,10}", fullmatch=True)


@st.composite
def _matchers(draw: st.DrawFn) -> list[tuple[str, Op]]:
    return draw(st.lists(st.tuples(_NAMES, st.sampled_from(list(Op))), max_size=6))


def _selector(shape: list[tuple[str, Op]], values: list[str]) -> Selector:
    return Selector(tuple(Matcher(name, op, value) for (name, op), value in zip(shape, values, strict=True)))


@given(_matchers(), st.data())
def test_sql_shape_depends_only_on_names_and_operators(shape: list[tuple[str, Op]], data: st.DataObject) -> None:
    def values() -> list[str]:
        return [data.draw(_SAFE_REGEX if op.is_regex else _VALUES) for _, op in shape]

    first, second = _selector(shape, values()), _selector(shape, values())
    sql_first, params_first = to_sql(first)
    sql_second, _ = to_sql(second)
    assert sql_first == sql_second
    assert set(params_first) == {f"s{i}_v" for i in range(len(shape))} | {
        f"s{i}_k" for i, (name, _) in enumerate(shape) if name in ("team", "env_x", "_k")
    }
    assert set(re.findall(r"\{(\w+):String\}", sql_first)) == set(params_first)


@given(_matchers(), st.data())
def test_parsed_sql_never_contains_value_text(shape: list[tuple[str, Op]], data: st.DataObject) -> None:
    # every value starts with "zq", which no SQL template contains
    values = [
        "zq" + data.draw(_SAFE_REGEX if op.is_regex else st.sampled_from(["'; DROP TABLE x --", "{e:String}", "é\n"]))
        for _, op in shape
    ]
    selector = parse_selector(str(_selector(shape, values)))
    sql, params = to_sql(selector)
    assert "zq" not in sql
    assert [params[f"s{i}_v"] for i in range(len(shape))] == values

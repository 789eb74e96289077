"""Plain-text rendering of top results."""

from __future__ import annotations

from typing import Any

import pytest

from flamehouse.ui.terminal import render_top, shorten_left, shorten_right

RESULT: dict[str, Any] = {
    "total_samples": 200,
    "functions": [
        {"function": "matmul", "file": "ops.py", "self": 150, "total": 150},
        {"function": "forward", "file": "/opt/venv/lib/python3.11/site-packages/torch/nn/modules/module.py",
         "self": 40, "total": 190},
        {"function": "main", "file": "train.py", "self": 0, "total": 200},
    ],
}  # fmt: skip


def test_table_layout() -> None:
    text = render_top(RESULT, width=100)
    lines = text.splitlines()
    assert lines[0] == "total samples: 200"
    assert lines[1].split() == ["SELF", "SELF%", "TOTAL", "TOTAL%", "FUNCTION", "FILE"]
    assert lines[2].split() == ["150", "75.0%", "150", "75.0%", "matmul", "ops.py"]
    assert lines[3].split()[:5] == ["40", "20.0%", "190", "95.0%", "forward"]
    assert lines[4].split() == ["0", "0.0%", "200", "100.0%", "main", "train.py"]
    assert all(len(line) <= 100 for line in lines)
    assert text.endswith("\n")


def test_columns_line_up() -> None:
    lines = render_top(RESULT, width=100).splitlines()[1:]
    function_column = lines[0].index("FUNCTION")
    file_column = lines[0].index("FILE")
    assert all(line[function_column - 1] == " " and line[function_column] != " " for line in lines)
    assert all(line[file_column - 1] == " " for line in lines)


def test_long_paths_keep_their_right_end() -> None:
    line = render_top(RESULT, width=70).splitlines()[3]
    assert len(line) <= 70
    assert line.endswith("modules/module.py")
    assert "…" in line


def test_long_function_names_keep_their_left_end() -> None:
    result = {"total_samples": 1, "functions": [{"function": "f" * 200, "file": "a.py", "self": 1, "total": 1}]}
    line = render_top(result, width=80).splitlines()[2]
    assert len(line) <= 80 and "ffff…" in line and line.endswith("a.py")


def test_empty_result() -> None:
    assert render_top({"total_samples": 0, "functions": []}) == "total samples: 0\nno samples in this range\n"


@pytest.mark.parametrize(
    ("text", "width", "left", "right"),
    [("abcdef", 10, "abcdef", "abcdef"), ("abcdef", 4, "…def", "abc…"), ("abcdef", 1, "f", "a"), ("abc", 0, "", "")],
)
def test_shorten(text: str, width: int, left: str, right: str) -> None:
    assert shorten_left(text, width) == left
    assert shorten_right(text, width) == right

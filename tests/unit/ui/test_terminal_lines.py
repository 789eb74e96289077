"""Plain-text rendering of ``/api/v1/lines`` results, with and without prices."""

from __future__ import annotations

from typing import Any

from flamehouse.ui.terminal import render_lines

RESULT: dict[str, Any] = {
    "total_samples": 1000,
    "rate": 100.0,
    "lines": [
        {"file": "data.py", "line": 10, "function": "load_batch", "self": 720, "total": 720,
         "cpu_seconds": 7.2, "gpu_busy_seconds": 0.0, "gpu_idle_seconds": 7.2},
        {"file": "/opt/venv/lib/python3.11/site-packages/torch/nn/modules/module.py", "line": 1532,
         "function": "_call_impl", "self": 180, "total": 900,
         "cpu_seconds": 1.8, "gpu_busy_seconds": 1.5, "gpu_idle_seconds": 0.3},
    ],
}  # fmt: skip


def test_table_without_prices() -> None:
    lines = render_lines(RESULT, width=120).splitlines()
    assert lines[0] == "total samples: 1000 (rate 100/s)"
    assert lines[1].split() == ["SELF", "CPU-s", "GPU-busy-s", "GPU-idle-s", "FUNCTION", "FILE:LINE"]
    assert lines[2].split() == ["720", "7.20", "0.00", "7.20", "load_batch", "data.py:10"]
    assert lines[3].split()[:5] == ["180", "1.80", "1.50", "0.30", "_call_impl"]
    assert lines[3].endswith("modules/module.py:1532")
    assert len(lines) == 4 and all(len(line) <= 120 for line in lines)


def test_prices_add_money_columns_and_a_sum() -> None:
    text = render_lines(RESULT, price_core_hour=0.36, price_gpu_hour=3.6, width=140)
    lines = text.splitlines()
    assert lines[1].split() == ["SELF", "CPU-s", "GPU-busy-s", "GPU-idle-s", "CPU", "$", "GPU-idle", "$", "FUNCTION",
                                "FILE:LINE"]  # fmt: skip
    # 7.2 s / 3600 x $0.36 = $0.00072; 7.2 s / 3600 x $3.6 = $0.0072
    assert lines[2].split() == ["720", "7.20", "0.00", "7.20", "0.0007", "0.0072", "load_batch", "data.py:10"]
    assert lines[3].split()[4:6] == ["0.0002", "0.0003"]
    assert lines[4] == "sum over these 2 lines: CPU $ 0.0009, GPU-idle $ 0.0075"
    assert text.endswith("\n")


def test_one_price_only() -> None:
    lines = render_lines(RESULT, price_gpu_hour=3600).splitlines()
    assert "CPU $" not in lines[1] and "GPU-idle $" in lines[1]
    assert lines[2].split()[4] == "7.2000"
    assert lines[-1] == "sum over these 2 lines: GPU-idle $ 7.5000"


def test_columns_line_up() -> None:
    lines = render_lines(RESULT, price_core_hour=1, width=120).splitlines()[1:3]
    function_column = lines[0].index("FUNCTION")
    assert all(line[function_column - 1] == " " and line[function_column] != " " for line in lines)


def test_empty_result() -> None:
    empty = {"total_samples": 0, "rate": 99.0, "lines": []}
    assert render_lines(empty, price_core_hour=1) == "total samples: 0 (rate 99/s)\nno samples in this range\n"

"""Logging set-up for every subcommand: ``--log-format text|json`` and ``--log-level``.

flamehouse logs messages with ``key=value`` context (``"profiling pid=42 service=trainer"``).
``text`` prints them as they are, after a timestamp, level and logger name; ``json`` prints one
object per line with ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``msg`` and every
``key=value`` pair of the message as its own field (numbers as numbers), plus ``exc`` with the
traceback when there is one, which is what log shippers (Loki, Elasticsearch, Cloud Logging)
index without a parsing rule. A key that would overwrite a standard field is prefixed with
``ctx_``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("text", "json")
_STANDARD = frozenset({"ts", "level", "logger", "msg", "exc"})
_PAIR = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)=(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\S+)")
_INT = re.compile(r"^-?\d{1,18}$")
_FLOAT = re.compile(r"^-?\d+\.\d+(e-?\d+)?$")


def context(message: str) -> dict[str, Any]:
    """The ``key=value`` pairs of a log message, values as int/float where they look like one."""
    fields: dict[str, Any] = {}
    for key, raw in _PAIR.findall(message):
        fields[key] = _value(raw)
    return fields


def _value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    return raw


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the message's key=value fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        for key, value in context(msg).items():
            out[f"ctx_{key}" if key in _STANDARD else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Configures the root logger once; raises ValueError on an unknown level or format."""
    if fmt not in FORMATS:
        raise ValueError(f"--log-format {fmt!r}: use text or json")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"--log-level {level!r}: use debug, info, warning or error")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name("flamehouse")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "flamehouse":  # ours from an earlier call; others (pytest's) stay
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)

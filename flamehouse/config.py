"""Configuration layers: a TOML file, then ``FLAMEHOUSE_*`` environment variables, then flags.

Each layer overrides the one before; flags always win. Nothing here knows individual
flags: every long option of every subcommand is a configuration key, derived from the
argparse parser itself, so a new flag is configurable the day it is added.

* **Keys** are long option names with ``-`` turned into ``_`` (``--grpc-listen`` →
  ``grpc_listen``), in a table named after the subcommand (``[server]``, ``[agent]``,
  ``[run]``, ``[query]``, ...). Global flags (``log_level``, ``log_format``) sit at the top.
* **Environment**: ``FLAMEHOUSE_<KEY>`` in upper case (``FLAMEHOUSE_GRPC_LISTEN``) applies to
  every subcommand that has the key. Booleans take ``1/0``, ``true/false``, ``yes/no``;
  repeatable flags take a comma-separated list. ``FLAMEHOUSE_CONFIG`` names the file.
* Repeatable flags (``--label``) add to the configured list.

An unknown table or key, or a value of the wrong type, is a :class:`ConfigError` (exit 2)
naming the file, table and key. :func:`show` prints the effective configuration as TOML with
secrets masked, each value annotated with where it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "FLAMEHOUSE_"
CONFIG_ENV = "FLAMEHOUSE_CONFIG"
#: Keys whose values are never printed (``config show``).
SECRET_WORDS = ("password", "token", "secret")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)
_SKIP = {"help", "version", "config"}


class ConfigError(Exception):
    """A configuration file, table, key or value is wrong; the message says what to fix."""


@dataclass(slots=True)
class Layered:
    """The values a config file and the environment set, with their origins."""

    #: section ("" for global) → key → value, already converted to the flag's type.
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: section → key → "config FILE" or "env NAME".
    origins: dict[str, dict[str, str]] = field(default_factory=dict)


def config_path(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The ``--config FILE`` given anywhere before ``--`` (else ``FLAMEHOUSE_CONFIG``)."""
    words = list(argv)
    words = words[: words.index("--")] if "--" in words else words
    for i, word in enumerate(words):
        if word == "--config" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--config="):
            return word.split("=", 1)[1]
    return environ.get(CONFIG_ENV) or None


def load_file(path: str) -> dict[str, Any]:
    """The parsed TOML file; ConfigError when unreadable or not TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"--config {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {path} is not valid TOML: {err}") from err


def sections(parser: argparse.ArgumentParser) -> dict[str, list[argparse.ArgumentParser]]:
    """Config table name → the parsers it configures ("" is the top-level parser)."""
    found: dict[str, list[argparse.ArgumentParser]] = {"": [parser]}
    for name, sub in _children(parser).items():
        if name == "config":
            continue
        found[name] = [sub, *_children(sub).values()]
    return found


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key → action, for every long option of ``parser`` that carries a value."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in _SKIP and not isinstance(action, argparse._SubParsersAction):
            found[longs[0][2:].replace("-", "_")] = action
    return found


def _section_options(parsers: list[argparse.ArgumentParser]) -> dict[str, argparse.Action]:
    merged: dict[str, argparse.Action] = {}
    for p in parsers:
        merged.update(options(p))
    return merged


def collect(
    parser: argparse.ArgumentParser, file: Mapping[str, Any] | None, path: str, environ: Mapping[str, str]
) -> Layered:
    """The file's values, then the environment's over them, checked against the parser's flags."""
    layered = Layered()
    known = {name: _section_options(parsers) for name, parsers in sections(parser).items()}
    for key, value in (file or {}).items():
        if isinstance(value, dict):
            if key not in known or key == "":
                raise ConfigError(f"{path}: unknown table [{key}]; known: {', '.join(sorted(k for k in known if k))}")
            for sub_key, sub_value in value.items():
                _put(layered, key, sub_key, sub_value, known=known[key], origin=f"config {path}")
        else:
            _put(layered, "", key, value, known=known[""], origin=f"config {path}")
    for section, opts in known.items():
        for key in opts:
            name = ENV_PREFIX + key.upper()
            if name in environ:
                _put(layered, section, key, environ[name], known=opts, origin=f"env {name}", from_env=True)
    return layered


def _put(
    layered: Layered,
    section: str,
    key: str,
    raw: Any,
    *,
    known: Mapping[str, argparse.Action],
    origin: str,
    from_env: bool = False,
) -> None:
    where = f"[{section}] " if section else ""
    if key not in known:
        raise ConfigError(f"{origin}: unknown key {where}{key!r}; known: {', '.join(sorted(known))}")
    try:
        value = convert(known[key], raw, from_env=from_env)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{origin}: {where}{key} = {raw!r}: {err}") from err
    layered.values.setdefault(section, {})[key] = value
    layered.origins.setdefault(section, {})[key] = origin


def convert(action: argparse.Action, raw: Any, *, from_env: bool = False) -> Any:
    """``raw`` (a TOML value, or an environment string) as the flag would have parsed it."""
    if isinstance(action, _FLAG_ACTIONS):
        if from_env and isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        if not isinstance(raw, bool):
            raise TypeError("expected true or false")
        return raw
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):
        items = [s.strip() for s in raw.split(",") if s.strip()] if from_env and isinstance(raw, str) else raw
        if not isinstance(items, list):
            raise TypeError("expected a list")
        return [_scalar(action, item) for item in items]
    return _scalar(action, raw)


def _scalar(action: argparse.Action, raw: Any) -> Any:
    kind = action.type
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError(f"expected a {getattr(kind, '__name__', 'string')}")
    if kind is None:
        if not isinstance(raw, str):
            raise TypeError("expected a string")
        value: Any = raw
    elif kind is float and isinstance(raw, int | float):
        value = float(raw)
    elif kind is int and isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        value = kind(raw) if callable(kind) else raw
    else:
        raise TypeError(f"expected a {getattr(kind, '__name__', 'value')}")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"choose from {', '.join(map(str, action.choices))}")
    return value


def apply(parser: argparse.ArgumentParser, layered: Layered) -> None:
    """Makes the layered values the parsers' defaults, so flags given on the command line win."""
    for section, parsers in sections(parser).items():
        values = layered.values.get(section, {})
        for p in parsers:
            opts = options(p)
            mine = {opts[k].dest: v for k, v in values.items() if k in opts}
            p.set_defaults(**mine)
            for key in values:
                if key in opts:
                    opts[key].required = False  # supplied by the configuration
            for group in p._mutually_exclusive_groups:
                if any(a.dest in mine for a in group._group_actions):
                    group.required = False


def parse(parser: argparse.ArgumentParser, argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """Parses ``argv`` over the configuration file and environment (exit 2 on a bad configuration)."""
    try:
        path = config_path(argv, environ)
        layered = collect(parser, load_file(path) if path else None, path or "", environ)
    except ConfigError as err:
        parser.exit(2, f"flamehouse: {err}\n")
    apply(parser, layered)
    args = parser.parse_args(argv)
    _drop_overruled(parser, args, argv)
    return args


def _drop_overruled(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> None:
    """A flag of a mutually exclusive group given on the command line resets the group's configured others."""
    given = {w.split("=", 1)[0] for w in argv if w.startswith("--")}
    chosen = _children(parser).get(getattr(args, "command", "") or "")
    if chosen is None:
        return
    for group in chosen._mutually_exclusive_groups:
        actions = group._group_actions
        if any(set(a.option_strings) & given for a in actions):
            for a in actions:
                if not set(a.option_strings) & given:
                    setattr(args, a.dest, None if a.default is None or isinstance(a.default, list) else False)


def masked(key: str, value: Any) -> Any:
    """``value``, or ``"***"`` when ``key`` names a secret (a password or token, not a token file)."""
    if value and any(key == w or key.endswith("_" + w) for w in SECRET_WORDS):
        return "***"
    return value


def show(parser: argparse.ArgumentParser, argv: Sequence[str], environ: Mapping[str, str], command: str | None) -> str:
    """The effective configuration (file, environment, defaults) as TOML, secrets masked."""
    path = config_path(argv, environ)
    layered = collect(parser, load_file(path) if path else None, path or "", environ)
    if command and command not in sections(parser):
        raise ConfigError(f"no subcommand {command!r}; choose from {', '.join(s for s in sections(parser) if s)}")
    lines = [f"# effective configuration; file: {path or 'none'}; flags on the command line override it"]
    for section, parsers in sections(parser).items():
        if command and section not in ("", command):
            continue
        if section:
            lines += ["", f"[{section}]"]
        for key, action in sorted(_section_options(parsers).items()):
            origin = layered.origins.get(section, {}).get(key, "default")
            value = layered.values.get(section, {}).get(key, action.default)
            lines.append(_toml_line(key, masked(key, value), origin))
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: Any, origin: str) -> str:
    if value is None or value is argparse.SUPPRESS:
        return f"# {key} =  (unset)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    else:
        text = json.dumps(str(value))  # a JSON string is a valid TOML basic string
    return f"{key} = {text}" + ("" if origin == "default" else f"  # {origin}")


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raises ValueError saying what to fix."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {listen!r} must look like 127.0.0.1:7080")
    return host.strip("[]"), int(port)

"""Configuration layers (TOML file < FLAMEHOUSE_* env < flags), ``config show``, and log formats."""

from __future__ import annotations

import io
import json
import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from flamehouse import config, logs
from flamehouse.cli import build_parser, main


def parse(argv: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return config.parse(build_parser(), argv, env or {})


@pytest.fixture
def toml(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flamehouse.toml"
    path.write_text(
        'log_level = "debug"\n'
        '[agent]\nrate = 50\nall_python = true\nlabel = ["team=vision"]\ntoken = "s3cret"\n'
        '[server]\ngrpc_listen = "0.0.0.0:7070"\nstore_password = "pw"\nttl_days = 30\n'
        "[query]\nlimit = 5\n"
    )
    yield path


def test_file_then_env_then_flags(toml: Path) -> None:
    args = parse(["--config", str(toml), "agent"], {})
    assert (args.rate, args.all_python, args.label, args.log_level) == (50, True, ["team=vision"], "debug")
    args = parse(["--config", str(toml), "agent"], {"FLAMEHOUSE_RATE": "77"})
    assert args.rate == 77
    args = parse(["--config", str(toml), "agent", "--rate", "12"], {"FLAMEHOUSE_RATE": "77"})
    assert args.rate == 12


def test_defaults_hold_without_any_layer() -> None:
    args = parse(["server"])
    assert (args.grpc_listen, args.ttl_days, args.cluster, args.log_format) == ("127.0.0.1:7070", 14, "", "text")


def test_sections_only_reach_their_subcommand(toml: Path) -> None:
    assert parse(["--config", str(toml), "server"]).grpc_listen == "0.0.0.0:7070"
    assert parse(["--config", str(toml), "collector"]).grpc_listen == "127.0.0.1:7070"
    assert parse(["--config", str(toml), "query", "top"]).limit == 5


def test_env_file_path_and_booleans_and_lists(toml: Path) -> None:
    env = {"FLAMEHOUSE_CONFIG": str(toml), "FLAMEHOUSE_IDLE": "yes", "FLAMEHOUSE_LABEL": "a=1, b=2"}
    args = parse(["agent"], env)
    assert (args.rate, args.idle, args.label) == (50, True, ["a=1", "b=2"])


def test_a_flag_of_an_exclusive_group_overrules_the_configured_one(toml: Path) -> None:
    args = parse(["--config", str(toml), "agent", "--match", "train"])
    assert (args.match, args.all_python) == ("train", False)


def test_required_flags_may_come_from_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[import]\nservice = "trainer"\n')
    assert parse(["--config", str(path), "import", "p.txt"]).service == "trainer"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nbogus = 1\n", "unknown key [agent] 'bogus'"),
        ("[nosuch]\nx = 1\n", "unknown table [nosuch]"),
        ("verbose = true\n", "unknown key 'verbose'"),
        ('[agent]\nrate = "fast"\n', "rate = 'fast'"),
        ("[agent]\nidle = 1\n", "expected true or false"),
        ('[query]\nkind = "gpu"\n', "choose from cpu, wall"),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_bad_configuration_exits_2_naming_what_to_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        parse(["--config", str(path), "agent", "--all-python"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_env_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["agent", "--all-python"], {"FLAMEHOUSE_WINDOW": "ten"})
    assert exc.value.code == 2
    assert "FLAMEHOUSE_WINDOW" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--config", str(tmp_path / "none.toml"), "server"])
    assert "none.toml" in capsys.readouterr().err


def test_config_show_masks_secrets_and_is_toml(toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(toml), "config", "show"]) == 0
    out = capsys.readouterr().out
    shown = tomllib.loads(out)
    assert shown["agent"]["token"] == "***"
    assert shown["server"]["store_password"] == "***"
    assert "s3cret" not in out and '"pw"' not in out
    assert shown["agent"]["rate"] == 50 and shown["server"]["ttl_days"] == 30
    assert shown["log_level"] == "debug"
    assert "# config " in out


def test_config_show_one_section_with_config_after_the_subcommand(
    toml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAMEHOUSE_WINDOW", "3")
    assert main(["config", "show", "agent", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    shown = tomllib.loads(out)
    assert set(shown) == {"log_level", "log_format", "agent"}
    assert shown["agent"]["window"] == 3
    assert "# env FLAMEHOUSE_WINDOW" in out
    assert main(["config", "show", "nosuch"]) == 2


def test_every_subcommand_option_is_a_config_key() -> None:
    parser = build_parser()
    keys = {s: set(config.options(p)) for s, ps in config.sections(parser).items() for p in ps[:1]}
    assert {"grpc_listen", "http_listen", "cluster", "store_password", "token_file"} <= keys["server"]
    assert {"metrics_listen", "collector", "rate", "gpu"} <= keys["agent"]
    assert {"log_level", "log_format"} <= keys[""]


def test_masking() -> None:
    assert config.masked("token", "x") == "***"
    assert config.masked("store_password", "x") == "***"
    assert config.masked("token_file", "/etc/t") == "/etc/t"
    assert config.masked("token", "") == ""


# --- log formats -------------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_key_value_context(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.setup("info", "json", stream)
    logging.getLogger("flamehouse.x").info("profiling pid=%d service=%s ratio=%.2f msg=hi", 42, "trainer", 0.5)
    logging.getLogger("flamehouse.x").debug("not shown")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "info" and record["logger"] == "flamehouse.x"
    assert record["msg"] == "profiling pid=42 service=trainer ratio=0.50 msg=hi"
    assert (record["pid"], record["service"], record["ratio"], record["ctx_msg"]) == (42, "trainer", 0.5, "hi")
    assert record["ts"].endswith("Z")


def test_json_lines_include_tracebacks(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.setup("info", "json", stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("t").exception("failed batch_id=%r", "b-1")
    record = json.loads(stream.getvalue())
    assert record["batch_id"] == "b-1" and "RuntimeError: boom" in record["exc"]


def test_text_format_and_repeated_setup_keep_one_handler(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.setup("info", "text", stream)
    logs.setup("info", "text", stream)
    logging.getLogger("t").info("hello host=a")
    assert stream.getvalue().count("hello host=a") == 1
    assert " INFO t hello host=a" in stream.getvalue()


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="--log-format"):
        logs.setup("info", "xml")
    with pytest.raises(ValueError, match="--log-level"):
        logs.setup("loud", "text")

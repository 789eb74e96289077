"""Labels of a process: environment, service/job defaults, user labels."""

from __future__ import annotations

import pytest

from flamehouse.agent.launcher import exit_code
from flamehouse.agent.targets import LabelConfig, parse_label, process_labels


def test_environment_labels_are_read() -> None:
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "1,2"}
    labels = process_labels(["python", "train.py"], env, LabelConfig(service="trainer"))
    assert labels == {
        "rank": "3",
        "local_rank": "1",
        "world_size": "8",
        "slurm_job_id": "4242",
        "cuda_visible_devices": "1,2",
        "service": "trainer",
        "job": "4242",
    }


def test_service_defaults_to_script_or_module_and_user_labels_win() -> None:
    assert process_labels(["/usr/bin/python3", "-u", "/src/train.py"], {}, LabelConfig())["service"] == "train"
    assert (
        process_labels(["python", "-m", "torch.distributed.run"], {}, LabelConfig())["service"]
        == "torch.distributed.run"
    )
    labels = process_labels(["python", "x.py"], {"RANK": "0"}, LabelConfig(job="j1", extra={"rank": "7", "team": "cv"}))
    assert labels["rank"] == "7" and labels["team"] == "cv" and labels["job"] == "j1"


@pytest.mark.parametrize("text", ["novalue", "=x", "1abc=x", "pid=3", "host=h"])
def test_bad_labels_say_what_to_fix(text: str) -> None:
    with pytest.raises(ValueError, match="--label"):
        parse_label(text)


def test_parse_label_keeps_equals_in_value() -> None:
    assert parse_label("expr=a=b") == ("expr", "a=b")


def test_exit_code_follows_the_shell_convention() -> None:
    assert exit_code(0) == 0 and exit_code(3) == 3 and exit_code(-15) == 143

"""Which processes to profile, and their labels.

Targets come from a process tree (``flamehouse run``), a pid list, a regex over
command lines, or every Python process of the host (``flamehouse agent``). A
process is Python when its executable is named like a Python interpreter or it
maps ``libpython``; a pyenv shim is a bash script that execs Python, so the
check is repeated on every scan rather than remembered.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil

from flamehouse.agent.model import ProcessInfo

log = logging.getLogger(__name__)

_PYTHON_EXE = re.compile(r"^(python|pypy)[0-9.]*[dmu]*$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

#: Environment variables read from each target, and the label each becomes.
ENV_LABELS: Mapping[str, str] = {
    "RANK": "rank",
    "LOCAL_RANK": "local_rank",
    "WORLD_SIZE": "world_size",
    "SLURM_JOB_ID": "slurm_job_id",
    "TORCHELASTIC_RUN_ID": "torchelastic_run_id",
    "CUDA_VISIBLE_DEVICES": "cuda_visible_devices",
    "POD_NAME": "pod",
    "POD_NAMESPACE": "namespace",
    "KUBERNETES_POD_NAME": "pod",
    "KUBERNETES_NAMESPACE": "namespace",
}


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """Labels the agent attaches to every process it profiles."""

    #: The ``service`` label; when empty, the process's executable script name is used.
    service: str = ""
    #: The ``job`` label; when empty, SLURM_JOB_ID or TORCHELASTIC_RUN_ID of the process.
    job: str = ""
    #: User labels from ``--label k=v``.
    extra: Mapping[str, str] = field(default_factory=dict)


def parse_label(text: str) -> tuple[str, str]:
    """Parses ``k=v`` from ``--label``; raises ValueError saying what to fix."""
    name, sep, value = text.partition("=")
    if not sep or not _LABEL_NAME.match(name):
        raise ValueError(f"--label {text!r}: expected NAME=VALUE with NAME matching {_LABEL_NAME.pattern}")
    if name in ("pid", "ppid", "thread", "host", "kind"):
        raise ValueError(f"--label {text!r}: {name!r} is set by the agent and cannot be overridden")
    return name, value


def is_python(proc: psutil.Process) -> bool:
    """True when ``proc`` runs a Python interpreter."""
    try:
        exe = os.path.basename(proc.exe())
        if _PYTHON_EXE.match(exe):
            return True
        with open(f"/proc/{proc.pid}/maps", encoding="utf-8", errors="replace") as maps:
            return any("libpython" in line for line in maps)
    except (psutil.Error, OSError):
        return False


def tree(root: int) -> list[psutil.Process]:
    """``root`` and all its living descendants."""
    try:
        proc = psutil.Process(root)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def matching(pattern: re.Pattern[str], exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Processes whose command line matches ``pattern`` (the agent and its py-spy children excluded)."""
    skip = {os.getpid(), *exclude}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in skip:
            continue
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if cmdline and "py-spy" not in cmdline and pattern.search(cmdline):
            found.append(proc)
    return found


def all_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter() if p.pid != os.getpid()]


def describe(proc: psutil.Process, labels: LabelConfig) -> ProcessInfo | None:
    """The ProcessInfo of ``proc`` with its labels, or None when it vanished."""
    try:
        with proc.oneshot():
            cmd = proc.cmdline()
            info = ProcessInfo(
                pid=proc.pid,
                ppid=proc.ppid(),
                start_time_ms=int(proc.create_time() * 1000),
                cmdline=" ".join(cmd),
                labels=process_labels(cmd, read_environ(proc), labels),
            )
    except psutil.Error:
        return None
    return info


def read_environ(proc: psutil.Process) -> dict[str, str]:
    """The process's environment, or {} where not permitted."""
    try:
        return dict(proc.environ())
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        log.debug("environment not readable pid=%d", proc.pid)
        return {}
    except psutil.NoSuchProcess:
        return {}


def process_labels(cmdline: list[str], environ: Mapping[str, str], labels: LabelConfig) -> dict[str, str]:
    """Labels of one process: environment-derived, then service/job, then user labels."""
    out: dict[str, str] = {}
    for var, name in ENV_LABELS.items():
        value = environ.get(var, "")
        if value and name not in out:
            out[name] = value
    out["service"] = labels.service or _script_name(cmdline)
    job = labels.job or environ.get("SLURM_JOB_ID", "") or environ.get("TORCHELASTIC_RUN_ID", "")
    if job:
        out["job"] = job
    out.update(labels.extra)
    return out


def _script_name(cmdline: list[str]) -> str:
    """A default service name: the script or module Python runs, else the executable."""
    args = cmdline[1:]
    for i, arg in enumerate(args):
        if arg == "-m" and i + 1 < len(args):
            return args[i + 1]
        if not arg.startswith("-"):
            return os.path.basename(arg).removesuffix(".py") or "python"
    return os.path.basename(cmdline[0]) if cmdline else "unknown"

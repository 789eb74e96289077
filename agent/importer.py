"""``flamehouse import``: profiles recorded elsewhere, shipped like the agent's own samples.

Reads two kinds of files into the agent's model (:class:`~.model.SampleRow`):

* **raw / folded stacks** (py-spy ``--format raw``, flamegraph.pl, flamehouse's
  folded export): ``frame;frame;frame COUNT`` lines, root first, a frame written
  ``function (file:line)``, ``function (file)`` or just ``function``. py-spy's
  pseudo-frames ``process PID:"cmdline"`` (``--subprocesses``) and
  ``thread (TID)`` / ``thread (TID): NAME`` (``--threads``) become the row's
  pid, thread id and thread name.
* **speedscope** JSON: ``sampled`` and ``evented`` profiles. py-spy's files count
  one sample per stack (its weights are seconds); unit ``none`` weights are
  sample counts; time weights (``seconds`` … ``nanoseconds``, and evented
  durations) become ``time * rate`` samples, rounded per stack. py-spy's profile
  names (``Process P Thread T "name"``) give pid and thread; in other files with
  several profiles the profile name is the thread name.

Every row is stamped with one second (``ImportOptions.time``) and the given
labels, encoded with :func:`~.batch.encode` and delivered by the
:class:`~.shipper.Shipper`, so an import passes the collector's validation like
any batch. Stacks deeper than the collector's limit keep their leaf-most
frames (counted in ``stacks_truncated``).
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flamehouse.agent import AgentError
from flamehouse.agent.batch import AgentIdentity, encode
from flamehouse.agent.model import Frame, Kind, ProcessInfo, SampleRow
from flamehouse.agent.shipper import Shipper, ShipperConfig
from flamehouse.proto import ingest_pb2

log = logging.getLogger(__name__)

FORMATS = ("auto", "raw", "speedscope")
#: Deepest stack the collector accepts (``IngestLimits.max_frames_per_stack``).
MAX_FRAMES = 512
#: Rows per batch: well under the collector's row and message-size limits.
MAX_ROWS_PER_BATCH = 100_000
_MAX_COUNT = 2**32 - 1

_PROCESS = re.compile(r'process ([0-9]+):"(.*)"', re.S)
_THREAD = re.compile(r"thread \((0[xX][0-9A-Fa-f]+|[0-9]+)\)(?:: (.*))?", re.S)
_PYSPY_PROFILE = re.compile(r'(?:Process ([0-9]+) )?Thread ([0-9]+)(?: "(.*)")?\s*')
_LINE = re.compile(r"[0-9]{1,9}")
#: Samples per unit of a speedscope value, times the sampling rate.
_PER_UNIT = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6, "nanoseconds": 1e-9}


class ProfileFileError(AgentError):
    """A file to import is not a readable py-spy raw / folded or speedscope profile; says where."""


@dataclass(frozen=True, slots=True)
class ImportedStack:
    """``count`` samples of one stack of one thread."""

    #: Frames root first, at most :data:`MAX_FRAMES`.
    frames: tuple[Frame, ...]
    pid: int
    tid: int
    thread: str
    count: int


@dataclass(frozen=True, slots=True)
class ParsedProfile:
    """A file's stacks, merged per (stack, pid, thread)."""

    #: ``raw`` or ``speedscope``.
    format: str
    stacks: tuple[ImportedStack, ...]
    #: Command lines found in py-spy ``process`` pseudo-frames, by pid.
    cmdlines: dict[int, str] = field(default_factory=dict)
    #: Samples left out: stacks without frames, or time weights worth less than one sample.
    skipped: int = 0
    #: Stacks cut to their leaf-most :data:`MAX_FRAMES` frames.
    stacks_truncated: int = 0

    @property
    def samples(self) -> int:
        return sum(s.count for s in self.stacks)


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How imported samples are stamped."""

    #: Process labels; must hold ``service``.
    labels: dict[str, str]
    #: The unix second every sample is stored at.
    time: int
    kind: Kind = Kind.CPU
    #: Command line recorded for processes the file does not name (e.g. ``import profile.txt``).
    cmdline: str = ""


class _Accumulator:
    """Sums weights per (frames, pid, tid, thread) and keeps what the pseudo-frames said."""

    def __init__(self) -> None:
        self.weights: dict[tuple[tuple[Frame, ...], int, int, str], float] = {}
        self.cmdlines: dict[int, str] = {}
        self.skipped = 0.0
        self.truncated = 0

    def add(self, frames: Sequence[Frame], pid: int, tid: int, thread: str, weight: float) -> None:
        if not frames:
            self.skipped += weight
            return
        if len(frames) > MAX_FRAMES:
            self.truncated += 1
            frames = frames[-MAX_FRAMES:]
        key = (tuple(frames), pid, tid, thread)
        self.weights[key] = self.weights.get(key, 0.0) + weight

    def result(self, fmt: str) -> ParsedProfile:
        stacks: list[ImportedStack] = []
        skipped = self.skipped
        for (frames, pid, tid, thread), weight in self.weights.items():
            count = round(weight)
            if count > _MAX_COUNT:
                raise ProfileFileError(f"a stack has {count} samples, over the limit of {_MAX_COUNT}")
            if count < 1:
                skipped += weight
                continue
            stacks.append(ImportedStack(frames, pid, tid, thread, count))
        stacks.sort(key=lambda s: -s.count)
        return ParsedProfile(fmt, tuple(stacks), dict(self.cmdlines), round(skipped), self.truncated)


# --------------------------------------------------------------------------- frames and pseudo-frames


def parse_frame(text: str) -> Frame:
    """``function (file:line)``, ``function (file)`` or ``function`` as a Frame.

    Python function names hold no space, so the location starts at the first ``" ("``.
    """
    start = text.find(" (")
    if start < 1 or not text.endswith(")"):
        return Frame(text, "", 0)
    function, location = text[:start], text[start + 2 : -1]
    file, colon, line = location.rpartition(":")
    if colon and _LINE.fullmatch(line):
        return Frame(function, file, int(line))
    return Frame(function, location, 0)


@dataclass(frozen=True, slots=True)
class _Pseudo:
    """What py-spy's leading pseudo-frames said, and how many there were."""

    pid: int | None = None
    cmdline: str = ""
    tid: int | None = None
    thread: str | None = None
    skip: int = 0


def _pseudo_frames(names: Sequence[str]) -> _Pseudo:
    """Reads ``process PID:"cmdline"`` and ``thread (TID)[: NAME]`` at the root of a stack."""
    pseudo = _Pseudo()
    if names and (found := _PROCESS.fullmatch(names[0])):
        pseudo = _Pseudo(pid=int(found.group(1)), cmdline=found.group(2), skip=1)
    if len(names) > pseudo.skip and (found := _THREAD.fullmatch(names[pseudo.skip])):
        pseudo = replace(pseudo, tid=int(found.group(1), 0), thread=found.group(2) or "", skip=pseudo.skip + 1)
    return pseudo


# --------------------------------------------------------------------------- raw / folded


def _split_process(stack: str) -> tuple[str | None, str]:
    """(the ``process PID:"cmdline"`` frame, the rest); the cmdline may hold ``;``."""
    if not stack.startswith("process "):
        return None, stack
    found = re.match(r'process [0-9]+:".*?"(?:;|\Z)', stack, re.S)
    if found is None:
        return None, stack
    return found.group(0).rstrip(";"), stack[found.end() :]


def parse_raw(text: str) -> ParsedProfile:
    """py-spy ``raw`` / folded stacks: one ``frame;frame;frame COUNT`` line per stack, root first."""
    acc = _Accumulator()
    for number, text_line in enumerate(text.splitlines(), 1):
        line = text_line.strip()
        if not line:
            continue
        stack, space, count = line.rpartition(" ")
        if not space or not stack or not re.fullmatch(r"[0-9]{1,12}", count):
            raise ProfileFileError(
                f"line {number}: expected 'frame;frame;... COUNT' (py-spy raw / folded stacks), got {line[:120]!r}"
            )
        process, rest = _split_process(stack)
        names = ([process] if process else []) + (rest.split(";") if rest else [])
        pseudo = _pseudo_frames(names)
        frames = [parse_frame(name) for name in names[pseudo.skip :]]
        pid = pseudo.pid or 0
        if pseudo.pid is not None:
            acc.cmdlines[pid] = pseudo.cmdline
        acc.add(frames, pid, pseudo.tid or 0, pseudo.thread or "", int(count))
    return acc.result("raw")


# --------------------------------------------------------------------------- speedscope


def _speedscope_frames(doc: dict[str, Any]) -> list[Frame]:
    shared = doc.get("shared")
    raw = shared.get("frames") if isinstance(shared, dict) else None
    if not isinstance(raw, list):
        raise ProfileFileError("speedscope file has no shared.frames list")
    frames: list[Frame] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProfileFileError(f"shared.frames[{i}] must be an object with a string 'name'")
        line = entry.get("line")
        if line is not None and not isinstance(line, int | float):
            raise ProfileFileError(f"shared.frames[{i}].line must be a number, got {line!r}")
        frames.append(Frame(entry["name"], str(entry.get("file") or ""), max(int(line or 0), 0)))
    return frames


def _stack(indexes: Any, frames: list[Frame], where: str) -> tuple[int, ...]:
    if not isinstance(indexes, list) or not all(isinstance(i, int) and 0 <= i < len(frames) for i in indexes):
        raise ProfileFileError(f"{where} must be a list of indexes into shared.frames (0 to {len(frames) - 1})")
    return tuple(indexes)


def _sampled(profile: dict[str, Any], frames: list[Frame], where: str) -> Iterator[tuple[tuple[int, ...], float]]:
    samples = profile.get("samples")
    weights = profile.get("weights", [1] * len(samples) if isinstance(samples, list) else None)
    if not isinstance(samples, list) or not isinstance(weights, list) or len(samples) != len(weights):
        raise ProfileFileError(f"{where}: a sampled profile needs 'samples' and 'weights' lists of equal length")
    for j, (stack, weight) in enumerate(zip(samples, weights, strict=True)):
        if not isinstance(weight, int | float) or weight < 0:
            raise ProfileFileError(f"{where}.weights[{j}] must be a number >= 0, got {weight!r}")
        yield _stack(stack, frames, f"{where}.samples[{j}]"), float(weight)


def _evented(profile: dict[str, Any], frames: list[Frame], where: str) -> Iterator[tuple[tuple[int, ...], float]]:
    """Time spent in each stack, from open (``O``) / close (``C``) events in time order."""
    events = profile.get("events")
    if not isinstance(events, list):
        raise ProfileFileError(f"{where}: an evented profile needs an 'events' list")
    open_frames: list[int] = []
    last = _number(profile.get("startValue", 0), f"{where}.startValue")
    for j, event in enumerate(events):
        at = _number(event.get("at") if isinstance(event, dict) else None, f"{where}.events[{j}].at")
        frame = _stack([event.get("frame")], frames, f"{where}.events[{j}].frame")[0]
        if at < last:
            raise ProfileFileError(f"{where}.events[{j}] at {at} is earlier than the event before it: sort by 'at'")
        if open_frames and at > last:
            yield tuple(open_frames), at - last
        last = at
        if event.get("type") == "O":
            open_frames.append(frame)
        elif event.get("type") == "C" and open_frames and open_frames[-1] == frame:
            open_frames.pop()
        else:
            raise ProfileFileError(f"{where}.events[{j}] must open ('O') a frame or close ('C') the innermost one")
    end = _number(profile.get("endValue", last), f"{where}.endValue")
    if open_frames and end > last:
        yield tuple(open_frames), end - last


def _number(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProfileFileError(f"{where} must be a number, got {value!r}")
    return float(value)


def _samples_per_unit(unit: Any, rate: float, where: str) -> float:
    if unit == "none":
        return 1.0
    if unit in _PER_UNIT:
        return _PER_UNIT[unit] * rate
    raise ProfileFileError(
        f"{where}.unit is {unit!r}: flamehouse imports time profiles (none, seconds, milliseconds, "
        "microseconds, nanoseconds)"
    )


def parse_speedscope(doc: Any, rate: float = 99.0) -> ParsedProfile:
    """A speedscope document (sampled and evented profiles); ``rate`` converts time weights to samples."""
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles"), list):
        raise ProfileFileError("not a speedscope file: expected a JSON object with a 'profiles' list")
    frames = _speedscope_frames(doc)
    from_pyspy = str(doc.get("exporter", "")).startswith("py-spy")
    profiles: list[Any] = doc["profiles"]
    acc = _Accumulator()
    for i, profile in enumerate(profiles):
        where = f"profiles[{i}]"
        if not isinstance(profile, dict):
            raise ProfileFileError(f"{where} must be an object")
        kind = profile.get("type")
        if kind not in ("sampled", "evented"):
            raise ProfileFileError(f"{where}.type is {kind!r}: expected 'sampled' or 'evented'")
        one_each = from_pyspy and kind == "sampled"  # py-spy's weights are seconds; each sample is one
        per_unit = 1.0 if one_each else _samples_per_unit(profile.get("unit"), rate, where)
        pid, tid, thread = _profile_thread(str(profile.get("name", "")), several=len(profiles) > 1)
        weighted = _sampled(profile, frames, where) if kind == "sampled" else _evented(profile, frames, where)
        for indexes, weight in weighted:
            stack = [frames[k] for k in indexes]
            pseudo = _pseudo_frames([f.function for f in itertools.takewhile(lambda f: not f.file, stack[:2])])
            if pseudo.pid is not None:
                acc.cmdlines[pseudo.pid] = pseudo.cmdline
            acc.add(
                stack[pseudo.skip :],
                pid if pseudo.pid is None else pseudo.pid,
                tid if pseudo.tid is None else pseudo.tid,
                thread if pseudo.thread is None else pseudo.thread,
                1.0 if one_each else weight * per_unit,
            )
    return acc.result("speedscope")


def _profile_thread(name: str, *, several: bool) -> tuple[int, int, str]:
    """(pid, tid, thread) from py-spy's ``Process P Thread T "name"``; else the name when there are several."""
    found = _PYSPY_PROFILE.fullmatch(name)
    if found is not None:
        return int(found.group(1) or 0), int(found.group(2)), found.group(3) or ""
    return 0, 0, name if several else ""


# --------------------------------------------------------------------------- files, batches, delivery


def read_profile(path: Path, fmt: str = "auto", rate: float = 99.0) -> ParsedProfile:
    """Reads ``path`` (gzipped or not) as ``raw``, ``speedscope`` or, with ``auto``, whichever it is."""
    if fmt not in FORMATS:
        raise ProfileFileError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except OSError as err:
        raise ProfileFileError(f"{path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ProfileFileError(f"{path} is not UTF-8 text: not a py-spy raw or speedscope file") from err
    if fmt == "speedscope" or (fmt == "auto" and text.lstrip().startswith("{")):
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise ProfileFileError(f"{path} is not valid JSON: {err}") from err
        return parse_speedscope(doc, rate)
    return parse_raw(text)


def to_batches(
    profile: ParsedProfile, options: ImportOptions, agent: AgentIdentity, max_rows: int = MAX_ROWS_PER_BATCH
) -> list[ingest_pb2.Batch]:
    """Wire batches of at most ``max_rows`` rows holding every stack of ``profile``."""
    if not options.labels.get("service"):
        raise ProfileFileError("a service label is required: pass --service NAME")
    processes = [
        ProcessInfo(
            pid=pid,
            ppid=0,
            start_time_ms=options.time * 1000,
            cmdline=profile.cmdlines.get(pid) or options.cmdline,
            labels=dict(options.labels),
        )
        for pid in sorted({s.pid for s in profile.stacks})
    ]
    rows = [SampleRow(options.time, s.pid, s.tid, s.thread, s.frames, options.kind, s.count) for s in profile.stacks]
    return [encode(rows[i : i + max_rows], processes, agent) for i in range(0, len(rows), max_rows)]


def deliver(batches: Sequence[ingest_pb2.Batch], config: ShipperConfig, timeout: float = 30.0) -> dict[str, int]:
    """Sends ``batches`` in order and waits up to ``timeout`` s; returns the shipper's counters.

    Nothing is spooled: whatever the collector did not acknowledge in time is
    counted in ``samples_dropped``.
    """
    shipper = Shipper(replace(config, spool_dir=None, max_memory_batches=max(len(batches), 1)))
    for batch in batches:
        shipper.submit(batch)
    counters = shipper.close(timeout)
    log.debug("import delivered %s", " ".join(f"{k}={v}" for k, v in counters.items()))
    return counters

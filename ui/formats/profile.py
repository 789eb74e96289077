"""The one model every export format renders, and the contract a format module follows.

An :class:`ExportProfile` is plain data: the selected stacks (root first, with
counts), the time range, the sample kind and the agents' sampling rate. A
format is an :class:`ExportFormat`: a name, a media type, a file extension and
``render(profile) -> bytes``; :mod:`flamehouse.ui.formats` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flamehouse import __version__
from flamehouse.collector.export_query import ExportFrame, ExportResult, ExportStack

__all__ = ["EXPORTER", "ExportFormat", "ExportFrame", "ExportProfile", "ExportStack", "frame_label"]

#: Written into files that have a field for the producing program.
EXPORTER = f"flamehouse@{__version__}"


@dataclass(frozen=True, slots=True)
class ExportProfile:
    """What an export holds; every format consumes only this."""

    #: Stacks with their sample counts, largest first; frames root first.
    stacks: tuple[ExportStack, ...]
    #: Shown as the profile's title where a format has one.
    name: str
    #: The time range, unix seconds, half-open.
    start: int
    end: int
    #: ``cpu`` or ``wall``: what one sample counts.
    kind: str = "cpu"
    #: The agents' sampling rate, samples per second: one sample stands for ``1 / rate`` seconds.
    rate: float = 99.0
    #: True when stacks are split by thread (``ExportStack.thread`` is set).
    per_thread: bool = False

    @property
    def total_samples(self) -> int:
        return sum(s.count for s in self.stacks)

    @staticmethod
    def from_result(result: ExportResult, *, name: str, rate: float = 99.0) -> ExportProfile:
        """The profile of one export query's result."""
        return ExportProfile(
            stacks=result.stacks,
            name=name,
            start=result.start,
            end=result.end,
            kind=result.kind,
            rate=rate,
            per_thread=result.per_thread,
        )


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One output format: how to render a profile and how to serve the file."""

    #: The ``format`` query parameter value.
    name: str
    #: ``Content-Type`` of the rendered bytes.
    media_type: str
    #: File name extension, without the leading dot (``pb.gz``).
    extension: str
    render: Callable[[ExportProfile], bytes]

    def filename(self, profile: ExportProfile) -> str:
        """A download name such as ``flamehouse-cpu-1764417600-1764421200.pb.gz``."""
        return f"flamehouse-{profile.kind}-{profile.start}-{profile.end}.{self.extension}"


def frame_label(frame: ExportFrame) -> str:
    """A frame as py-spy's ``raw`` output writes it: ``function (file:line)``.

    The line is left out when unknown (0), the parentheses when the file is too.
    """
    if not frame.file:
        return frame.function
    if frame.line <= 0:
        return f"{frame.function} ({frame.file})"
    return f"{frame.function} ({frame.file}:{frame.line})"

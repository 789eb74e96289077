"""pprof: a gzipped ``perftools.profiles.Profile`` (``proto/pprof/profile.proto``).

* ``sample_type`` is ``[samples/count, <kind>/nanoseconds]``: the sample count
  and the time it stands for, ``count * 1e9 / rate`` (``kind`` is ``cpu``, or
  ``wall`` for wall-clock exports); ``period_type`` is the same time type with
  ``period = 1e9 / rate``.
* A ``Function`` per (function, file), with ``start_line`` the smallest line
  seen for it and ``system_name`` equal to the name (left empty for names such
  as ``<module>``, which pprof would otherwise cut as C++ templates); a
  ``Location`` per (function, file, line) with one ``Line``.
* Samples list location ids leaf first; a per-thread export labels each
  sample ``thread=NAME``.
* ``time_nanos`` and ``duration_nanos`` come from the export's time range.

No mappings: Python frames have no addresses; pprof consumers accept that.
"""

from __future__ import annotations

import gzip
import re

from flamehouse.proto.profile_pb2 import Function, Profile
from flamehouse.ui.formats.profile import EXPORTER, ExportFormat, ExportFrame, ExportProfile

_NS = 1_000_000_000
#: Names pprof would shorten as demangled C++ (``<module>`` becomes ``""``) unless ``system_name``
#: differs from ``name``, which tells it the name is final; Java-style ``.<`` it leaves alone.
_LOOKS_LIKE_CPP = re.compile(r"^(?!.*\.<).*(?:[<>\[\]]|::)")


class _Builder:
    """Interns strings, functions and locations into one Profile message."""

    def __init__(self) -> None:
        self.message = Profile()
        self.strings: dict[str, int] = {}
        self.functions: dict[tuple[str, str], Function] = {}
        self.locations: dict[ExportFrame, int] = {}
        self.string("")  # string_table[0] must be ""

    def string(self, text: str) -> int:
        index = self.strings.get(text)
        if index is None:
            index = self.strings[text] = len(self.strings)
            self.message.string_table.append(text)
        return index

    def location(self, frame: ExportFrame) -> int:
        found = self.locations.get(frame)
        if found is not None:
            return found
        function = self.functions.get((frame.function, frame.file))
        if function is None:
            function = self.message.function.add(id=len(self.functions) + 1)
            function.name = self.string(frame.function)
            function.system_name = 0 if _LOOKS_LIKE_CPP.search(frame.function) else function.name
            function.filename = self.string(frame.file)
            self.functions[(frame.function, frame.file)] = function
        if frame.line > 0 and (function.start_line == 0 or frame.line < function.start_line):
            function.start_line = frame.line
        location_id = self.locations[frame] = len(self.locations) + 1
        location = self.message.location.add(id=location_id)
        location.line.add(function_id=function.id, line=frame.line)
        return location_id


def to_message(profile: ExportProfile) -> Profile:
    """The Profile message (not yet serialized or compressed)."""
    if not profile.rate > 0:
        raise ValueError(f"rate must be positive, got {profile.rate}")
    builder = _Builder()
    message = builder.message
    time_type = "wall" if profile.kind == "wall" else "cpu"
    message.sample_type.add(type=builder.string("samples"), unit=builder.string("count"))
    message.sample_type.add(type=builder.string(time_type), unit=builder.string("nanoseconds"))
    message.period_type.type = builder.string(time_type)
    message.period_type.unit = builder.string("nanoseconds")
    message.period = round(_NS / profile.rate)
    message.time_nanos = profile.start * _NS
    message.duration_nanos = max(profile.end - profile.start, 0) * _NS
    message.comment.append(builder.string(f"{EXPORTER} {profile.name}"))
    thread_key = builder.string("thread") if profile.per_thread else 0
    for stack in profile.stacks:
        sample = message.sample.add()
        sample.location_id.extend(builder.location(f) for f in reversed(stack.frames))
        sample.value.extend((stack.count, round(stack.count * _NS / profile.rate)))
        if thread_key:
            sample.label.add(key=thread_key, str=builder.string(stack.thread))
    return message


def render(profile: ExportProfile) -> bytes:
    """The gzipped Profile, as pprof tools read it from disk."""
    return gzip.compress(to_message(profile).SerializeToString(), mtime=0)


FORMAT = ExportFormat(name="pprof", media_type="application/octet-stream", extension="pb.gz", render=render)

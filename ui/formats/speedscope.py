"""speedscope's file format (https://www.speedscope.app/file-format-schema.json), sampled profiles.

One document holds the frames once (``shared.frames``: name, file, line) and
one ``sampled`` profile, or one per thread named after the thread when the
export is per thread (``flamehouse import`` reads the name back as the thread). A
profile lists distinct stacks (frame indexes, root first) with their sample
counts as weights, in the unit ``none``: weights are samples, so speedscope's
totals equal flamehouse's and the file imports back exactly.
"""

from __future__ import annotations

import json
from typing import Any

from flamehouse.ui.formats.profile import EXPORTER, ExportFormat, ExportFrame, ExportProfile, ExportStack

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


class _Frames:
    """``shared.frames``, each frame stored once."""

    def __init__(self) -> None:
        self.index: dict[ExportFrame, int] = {}
        self.json: list[dict[str, Any]] = []

    def of(self, frame: ExportFrame) -> int:
        found = self.index.get(frame)
        if found is None:
            found = self.index[frame] = len(self.json)
            entry: dict[str, Any] = {"name": frame.function}
            if frame.file:
                entry["file"] = frame.file
            if frame.line > 0:
                entry["line"] = frame.line
            self.json.append(entry)
        return found


def _profile(name: str, stacks: list[ExportStack], frames: _Frames) -> dict[str, Any]:
    samples = [[frames.of(f) for f in stack.frames] for stack in stacks]
    weights = [stack.count for stack in stacks]
    return {
        "type": "sampled",
        "name": name,
        "unit": "none",
        "startValue": 0,
        "endValue": sum(weights),
        "samples": samples,
        "weights": weights,
    }


def _groups(profile: ExportProfile) -> list[tuple[str, list[ExportStack]]]:
    """(profile name, stacks) per thread, or one group for a merged export."""
    if not profile.per_thread:
        return [(profile.name, list(profile.stacks))]
    threads: dict[str, list[ExportStack]] = {}
    for stack in profile.stacks:
        threads.setdefault(stack.thread, []).append(stack)
    ordered = sorted(threads.items(), key=lambda item: (-sum(s.count for s in item[1]), item[0]))
    return [(thread or "(unnamed thread)", stacks) for thread, stacks in ordered]


def render(profile: ExportProfile) -> bytes:
    """The speedscope JSON document, UTF-8."""
    frames = _Frames()
    profiles = [_profile(name, stacks, frames) for name, stacks in _groups(profile)]
    doc = {
        "$schema": SCHEMA,
        "shared": {"frames": frames.json},
        "profiles": profiles,
        "name": profile.name,
        "activeProfileIndex": 0,
        "exporter": EXPORTER,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


FORMAT = ExportFormat(name="speedscope", media_type="application/json", extension="speedscope.json", render=render)

"""Folded stacks: ``frame;frame;frame count`` lines, root first (flamegraph.pl, Pyroscope, py-spy ``raw``).

A frame is written as py-spy's ``raw`` output writes it, ``function (file:line)``
(see :func:`~.profile.frame_label`), so ``flamehouse import`` reads an export back
unchanged. A per-thread export starts each stack with a ``thread (0): NAME``
pseudo-frame, as py-spy ``--threads`` writes ``thread (TID): NAME`` (the thread id
is not kept per stack, so it is 0). Lines are sorted, so equal profiles
give equal files.
"""

from __future__ import annotations

from flamehouse.ui.formats.profile import ExportFormat, ExportProfile, frame_label


def render(profile: ExportProfile) -> bytes:
    """The folded lines, UTF-8, one per distinct stack, newline-terminated."""
    counts: dict[str, int] = {}
    for stack in profile.stacks:
        labels = [frame_label(f) for f in stack.frames]
        if profile.per_thread:
            labels.insert(0, f"thread (0): {stack.thread}" if stack.thread else "thread (0)")
        text = ";".join(labels)
        counts[text] = counts.get(text, 0) + stack.count
    return "".join(f"{text} {n}\n" for text, n in sorted(counts.items())).encode("utf-8")


FORMAT = ExportFormat(name="folded", media_type="text/plain; charset=utf-8", extension="folded", render=render)

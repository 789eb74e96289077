"""Export formats: one module per format, one contract (pyinstrument's renderers).

Each module renders an :class:`~.profile.ExportProfile` to bytes and says how to
serve them (:class:`~.profile.ExportFormat`):

* :mod:`.speedscope`: speedscope's JSON file format, sampled profiles;
* :mod:`.pprof`: a gzipped ``perftools.profiles.Profile`` (``go tool pprof``);
* :mod:`.folded`: ``frame;frame;frame count`` lines (flamegraph.pl, py-spy ``raw``).

``GET /api/v1/export?format=NAME`` and ``flamehouse query export`` pick one
from :data:`FORMATS`.
"""

from __future__ import annotations

from flamehouse.ui.formats import folded, pprof, speedscope
from flamehouse.ui.formats.profile import ExportFormat, ExportProfile

__all__ = ["FORMATS", "ExportFormat", "ExportProfile", "get_format"]

#: Every export format by its name.
FORMATS: dict[str, ExportFormat] = {f.name: f for f in (speedscope.FORMAT, pprof.FORMAT, folded.FORMAT)}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; ValueError listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}: expected one of {', '.join(FORMATS)}") from None

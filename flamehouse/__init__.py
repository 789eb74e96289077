"""flamehouse: continuous CPU/GPU profiling for ML training and inference jobs.

The root package holds the CLI entry point (:mod:`flamehouse.cli`) and the
version; components live in ``flamehouse.agent``, ``flamehouse.collector``,
``flamehouse.ui`` and ``flamehouse.proto``.
"""

from __future__ import annotations

__version__ = "0.1.0"

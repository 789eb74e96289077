"""The UI: owns the HTTP JSON API and the pages, and the clients that read them.

:mod:`.app` builds the FastAPI application over the collector's
:class:`~flamehouse.collector.query.QueryService` (``/api/v1/...``, ``/healthz``,
``/metrics``); :mod:`.client` is a small stdlib HTTP client for that API and
:mod:`.terminal` renders its results as plain text for the CLI.

Exceptions::

    ApiError        the API answered with an error status or could not be reached
"""

from __future__ import annotations

"""The collector: ingest over gRPC, the ClickHouse schema, and the read queries.

Owns everything that touches the store: :mod:`.store` (connection to chDB or a
ClickHouse server), :mod:`.schema` (versioned migrations), :mod:`.validate` and :mod:`.ingest`
(batch inserts behind ``flamehouse.v1.Ingest/Push``),
:mod:`.selector` and :mod:`.query` (the read side the UI and CLI use).

Exceptions::

    CollectorError
    ├── StoreError            the store is unreachable or a statement failed
    ├── InvalidBatch          a pushed batch breaks the wire contract (INVALID_ARGUMENT)
    ├── ListenError           the gRPC server cannot bind its address (collector.service)
    └── QueryError            a read request is malformed (HTTP 400)
        └── SelectorError     the selector does not parse; carries the position
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class StoreError(CollectorError):
    """The store could not be reached or a statement failed."""


class InvalidBatch(CollectorError):
    """A pushed batch breaks the wire contract; nothing of it was stored."""


class QueryError(CollectorError):
    """A read request is malformed; the message says what to fix."""


class SelectorError(QueryError):
    """A selector does not parse; ``position`` is the 0-based offending offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position

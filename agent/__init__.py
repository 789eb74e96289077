"""The agent: samples Python stacks with py-spy and ships them to a collector.

Owns process discovery (:mod:`.targets`), sampling (:mod:`.sampler`, one py-spy
child per process in rolling windows), encoding to the wire format
(:mod:`.batch`), delivery (:mod:`.shipper`) and the loops that tie them
together (:mod:`.profiler` for ``flamehouse agent``, :mod:`.launcher` for
``flamehouse run``). It imports only the generated protobuf code and the id
functions of :mod:`flamehouse.proto`, never the collector or the UI.

Exceptions::

    AgentError
    ├── TargetError       a process cannot be profiled (gone, not Python, no ptrace permission)
    ├── DeliveryError     a batch could not be delivered and will not be retried
    └── SpoolError        the on-disk spool cannot be used (agent.spool; the agent goes memory-only)
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class TargetError(AgentError):
    """A process cannot be profiled; the message names the pid and the cause."""

    def __init__(self, pid: int, cause: str) -> None:
        super().__init__(f"pid {pid}: {cause}")
        self.pid = pid
        self.cause = cause


class DeliveryError(AgentError):
    """A batch was refused for good (e.g. INVALID_ARGUMENT); retrying will not help."""

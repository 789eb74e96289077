"""Stable 64-bit identifiers for frames, functions and stacks.

Every agent and the collector compute these the same way, so a stack seen by
two agents on two hosts has one id. Each id is the first 8 bytes of a BLAKE2b
digest read as an unsigned little-endian integer:

* function id: ``blake2b(function + "\\0" + file)``
* frame id:    ``blake2b(function + "\\0" + file + "\\0" + str(line))``
* stack id:    ``blake2b(frame ids of the stack, root first, 8 bytes LE each)``
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b


def _h64(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


def function_id(function: str, file: str) -> int:
    """Identifier of a function regardless of the line being executed."""
    return _h64(f"{function}\0{file}".encode("utf-8", "surrogatepass"))


def frame_id(function: str, file: str, line: int) -> int:
    """Identifier of one (function, file, line) frame."""
    return _h64(f"{function}\0{file}\0{line}".encode("utf-8", "surrogatepass"))


def stack_id(frame_ids: Sequence[int]) -> int:
    """Identifier of a stack given its frame ids, root first."""
    return _h64(b"".join(f.to_bytes(8, "little") for f in frame_ids))

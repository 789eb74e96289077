"""The agent's on-disk spool: batches the collector could not take yet, kept across restarts.

Layout under the spool root (the shipper uses ``<--spool-dir>/<collector address>``, the
``--spool-dir`` default being ``$XDG_STATE_HOME/flamehouse/spool``)::

    root/q0/lock                                 flock'ed by the agent using this slot
    root/q0/00000001000000000007-1234.batch      one serialized Batch: <seq>-<samples>.batch
    root/q1/...                                  a second agent running at the same time

An agent locks the first free slot (``q0``, ``q1``, ...) for its lifetime, so agents on one
host never share files, and a restarted agent finds what its predecessor left. Slots whose
agent is gone (their lock is free) are adopted: their files move into this agent's slot,
after its own, in their order. The lock is ``fcntl.flock``: the kernel drops it when the
process dies, SIGKILL included.

Each file is written to a ``.tmp`` name, fsync'ed, renamed and the directory fsync'ed, so a
file with its final name is always complete; stray ``.tmp`` files are deleted on open.
Files are read oldest first (by sequence number). The sample count in the name lets the
spool count what it drops without reading it back.

The byte bound covers the files waiting in the queue; the one batch the shipper has taken
out (:meth:`Spool.pop`) stays on disk until :meth:`Spool.discard`, so a crash while it is
in flight loses nothing (the collector deduplicates the repeat by ``batch_id``).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from flamehouse.agent import AgentError

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{20})-(\d+)\.batch$")
_SLOT = re.compile(r"^q(\d+)$")
#: First sequence number of an empty slot: leaves room to insert in front of it.
_FIRST_SEQ = 10**15
MAX_SLOTS = 64


class SpoolError(AgentError):
    """The spool directory cannot be created, locked, written or read."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled batch."""

    #: Position in the queue; lower is older.
    seq: int
    #: py-spy samples the batch carries (0 for GPU-only batches).
    samples: int
    #: Bytes on disk.
    size: int
    path: Path


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/flamehouse/spool``, else ``~/.local/state/flamehouse/spool``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "flamehouse" / "spool"


class Spool:
    """A bounded FIFO of serialized batches in one locked slot under ``root``; not thread-safe."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        """Creates ``root`` if needed, locks a slot, recovers its files and adopts orphaned slots.

        Raises :class:`SpoolError` when the directory cannot be created or written.
        """
        if max_bytes < 1:
            raise SpoolError(f"spool byte bound must be positive, got {max_bytes}")
        self.root = root
        self.max_bytes = max_bytes
        self._entries: collections.deque[SpoolEntry] = collections.deque()
        self._bytes = 0
        self._last_seq = _FIRST_SEQ
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.dir, self._lock_fd = _lock_free_slot(root)
        except OSError as err:
            raise SpoolError(f"cannot use spool directory {root}: {err.strerror or err}") from err
        try:
            self._recover()
        except OSError as err:
            self.close()
            raise SpoolError(f"cannot read spool directory {self.dir}: {err.strerror or err}") from err

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes of the files waiting in the queue."""
        return self._bytes

    @property
    def samples(self) -> int:
        """Samples carried by the files waiting in the queue."""
        return sum(e.samples for e in self._entries)

    def append(self, data: bytes, samples: int, *, front: bool = False) -> list[SpoolEntry]:
        """Writes one batch durably, at the back (or ``front``) of the queue.

        Makes room by deleting the oldest files first and returns them (the caller counts
        them as dropped). A batch bigger than the whole bound is not written and is
        returned alone as dropped. Raises :class:`SpoolError` when the write fails
        (disk full, directory gone); nothing is dropped then.
        """
        if len(data) > self.max_bytes:
            return [SpoolEntry(seq=-1, samples=samples, size=len(data), path=self.dir / "(not written)")]
        seq = self._next_seq(front)
        entry = SpoolEntry(seq=seq, samples=samples, size=len(data), path=self.dir / f"{seq:020d}-{samples}.batch")
        try:
            _write_atomic(entry.path, data)
        except OSError as err:
            raise SpoolError(f"cannot write spool file {entry.path}: {err.strerror or err}") from err
        dropped: list[SpoolEntry] = []
        while self._entries and self._bytes + entry.size > self.max_bytes:
            dropped.append(self._drop_oldest())
        if front:
            self._entries.appendleft(entry)
        else:
            self._entries.append(entry)
        self._bytes += entry.size
        return dropped

    def pop(self) -> SpoolEntry | None:
        """Takes the oldest entry out of the queue; its file stays until :meth:`discard`."""
        if not self._entries:
            return None
        entry = self._entries.popleft()
        self._bytes -= entry.size
        return entry

    def unpop(self, entry: SpoolEntry) -> None:
        """Puts a popped, undelivered entry back at the front of the queue."""
        self._entries.appendleft(entry)
        self._bytes += entry.size

    def read(self, entry: SpoolEntry) -> bytes:
        """The bytes of a popped entry; raises :class:`SpoolError` when the file is unreadable."""
        try:
            return entry.path.read_bytes()
        except OSError as err:
            raise SpoolError(f"cannot read spool file {entry.path}: {err.strerror or err}") from err

    def discard(self, entry: SpoolEntry) -> None:
        """Deletes a popped entry's file (delivered, or dropped by the caller)."""
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as err:
            log.warning("cannot delete spool file path=%s error=%s", entry.path, err.strerror or err)

    def close(self) -> None:
        """Releases the slot lock; the files stay for the next agent."""
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def _next_seq(self, front: bool) -> int:
        """A sequence number no file of this slot has (popped ones included)."""
        if front and self._entries:
            return self._entries[0].seq - 1
        self._last_seq += 1
        return self._last_seq

    def _drop_oldest(self) -> SpoolEntry:
        entry = self._entries.popleft()
        self._bytes -= entry.size
        self.discard(entry)
        return entry

    def _recover(self) -> None:
        """Indexes this slot's files, deletes stray temp files, then adopts orphaned slots."""
        for entry in _scan(self.dir):
            self._entries.append(entry)
            self._bytes += entry.size
        self._last_seq = self._entries[-1].seq if self._entries else _FIRST_SEQ
        for other in sorted(self.root.iterdir()):
            if other != self.dir and _SLOT.match(other.name) and other.is_dir():
                self._adopt(other)

    def _adopt(self, slot: Path) -> None:
        """Moves the files of a slot whose agent is gone to the back of this queue."""
        fd = _try_lock(slot)
        if fd is None:
            return  # another live agent owns it
        try:
            moved = 0
            for old in _scan(slot):
                seq = self._next_seq(front=False)
                entry = SpoolEntry(seq, old.samples, old.size, self.dir / f"{seq:020d}-{old.samples}.batch")
                old.path.rename(entry.path)
                self._entries.append(entry)
                self._bytes += entry.size
                moved += 1
            if moved:
                _fsync_dir(self.dir)
                _fsync_dir(slot)
                log.info("adopted spool slot=%s batches=%d into=%s", slot, moved, self.dir)
        finally:
            os.close(fd)


def _scan(slot: Path) -> list[SpoolEntry]:
    """The complete batch files of ``slot``, oldest first; deletes stray temp files."""
    entries: list[SpoolEntry] = []
    for path in slot.iterdir():
        match = _FILE.match(path.name)
        if match:
            entries.append(SpoolEntry(int(match[1]), int(match[2]), path.stat().st_size, path))
        elif path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
    entries.sort(key=lambda e: e.seq)
    return entries


def _lock_free_slot(root: Path) -> tuple[Path, int]:
    """Locks the first slot no live agent holds; returns (slot, lock fd)."""
    for number in range(MAX_SLOTS):
        slot = root / f"q{number}"
        slot.mkdir(exist_ok=True)
        fd = _try_lock(slot)
        if fd is not None:
            return slot, fd
    raise OSError(f"all {MAX_SLOTS} spool slots are locked by running agents")


def _try_lock(slot: Path) -> int | None:
    """An fd holding ``slot``'s exclusive lock, or None when another process holds it."""
    fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    return fd


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that the name only ever shows complete content."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

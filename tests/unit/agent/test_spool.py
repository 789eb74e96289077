"""The on-disk spool: order, bounds, drop-oldest counting, restart recovery, unwritable disks."""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flamehouse.agent.spool import Spool, SpoolError, default_spool_dir


@pytest.fixture
def opened() -> Iterator[list[Spool]]:
    """Spools a test opens; their locks are released after it."""
    spools: list[Spool] = []
    yield spools
    for spool in spools:
        spool.close()


def open_spool(opened: list[Spool], root: Path, max_bytes: int = 10_000) -> Spool:
    spool = Spool(root, max_bytes)
    opened.append(spool)
    return spool


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (entry := spool.pop()) is not None:
        out.append(spool.read(entry))
        spool.discard(entry)
    return out


def batch_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.batch"))


def test_batches_come_back_in_order(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path)
    for i in range(5):
        assert spool.append(f"batch-{i}".encode(), samples=i) == []
    assert (len(spool), spool.size_bytes, spool.samples) == (5, 35, 10)
    assert drain(spool) == [f"batch-{i}".encode() for i in range(5)]
    assert batch_files(tmp_path) == []


def test_front_insert_goes_before_everything(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path)
    spool.append(b"second", 1)
    spool.append(b"third", 1)
    spool.append(b"first", 1, front=True)
    assert drain(spool) == [b"first", b"second", b"third"]


def test_over_the_byte_bound_the_oldest_are_dropped_and_returned(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path, max_bytes=100)
    for i in range(2):
        assert spool.append(bytes([i]) * 40, samples=10 + i) == []
    dropped = spool.append(b"x" * 40, samples=7)  # 120 > 100: the oldest goes
    assert [(d.samples, d.size) for d in dropped] == [(10, 40)]
    assert (len(spool), spool.size_bytes) == (2, 80)
    assert len(batch_files(tmp_path)) == 2
    dropped = spool.append(b"y" * 100, samples=3)  # needs the whole bound: both others go
    assert sorted(d.samples for d in dropped) == [7, 11]
    assert drain(spool) == [b"y" * 100]


def test_a_batch_bigger_than_the_bound_is_not_written(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path, max_bytes=10)
    spool.append(b"small", 1)
    dropped = spool.append(b"z" * 11, samples=5)
    assert [(d.samples, d.size) for d in dropped] == [(5, 11)]
    assert drain(spool) == [b"small"]


def test_a_new_spool_on_the_same_dir_recovers_everything_in_order(tmp_path: Path, opened: list[Spool]) -> None:
    first = Spool(tmp_path, 10_000)
    for i in range(4):
        first.append(f"b{i}".encode(), samples=i + 1)
    in_flight = first.pop()  # taken for sending, never acked: must survive
    assert in_flight is not None
    first.close()  # (a SIGKILL would release the lock the same way)

    second = open_spool(opened, tmp_path)
    assert (len(second), second.samples) == (4, 10)
    second.append(b"b4", 5)
    assert drain(second) == [b"b0", b"b1", b"b2", b"b3", b"b4"]


def test_unpop_puts_a_batch_back_at_the_front(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path)
    spool.append(b"a", 1)
    spool.append(b"b", 1)
    entry = spool.pop()
    assert entry is not None
    spool.append(b"c", 1)
    spool.unpop(entry)
    assert drain(spool) == [b"a", b"b", b"c"]


def test_stray_temp_files_are_removed_and_never_read(tmp_path: Path, opened: list[Spool]) -> None:
    first = Spool(tmp_path, 10_000)
    first.append(b"whole", 1)
    slot = first.dir
    first.close()
    (slot / ".00000000000000000009-3.batch.tmp").write_bytes(b"half a ba")  # a crash mid-write
    (slot / "notes.txt").write_text("left alone")

    second = open_spool(opened, tmp_path)
    assert not list(slot.glob("*.tmp"))
    assert (slot / "notes.txt").exists()
    assert drain(second) == [b"whole"]


def test_two_live_agents_get_separate_slots(tmp_path: Path, opened: list[Spool]) -> None:
    one, two = open_spool(opened, tmp_path), open_spool(opened, tmp_path)
    assert one.dir != two.dir
    one.append(b"one", 1)
    two.append(b"two", 1)
    assert drain(two) == [b"two"]
    assert drain(one) == [b"one"]


def test_orphaned_slots_are_adopted_after_our_own(tmp_path: Path, opened: list[Spool]) -> None:
    a, b = Spool(tmp_path, 10_000), Spool(tmp_path, 10_000)
    a.append(b"a0", 1)
    a.append(b"a1", 1)
    b.append(b"b0", 2)
    b.append(b"b1", 2)
    a.close()
    b.close()

    c = open_spool(opened, tmp_path)
    assert (len(c), c.samples) == (4, 6)
    c.append(b"c0", 1)
    assert drain(c) == [b"a0", b"a1", b"b0", b"b1", b"c0"]
    assert batch_files(tmp_path) == []


def test_unwritable_root_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(SpoolError, match="cannot use spool directory"):
        Spool(blocker, 1000)
    with pytest.raises(SpoolError, match="must be positive"):
        Spool(tmp_path / "ok", 0)


def test_directory_gone_mid_run_raises_and_keeps_the_index(tmp_path: Path, opened: list[Spool]) -> None:
    spool = open_spool(opened, tmp_path)
    spool.append(b"kept", 1)
    shutil.rmtree(spool.dir)
    with pytest.raises(SpoolError, match="cannot write spool file"):
        spool.append(b"lost", 1)
    assert (len(spool), spool.size_bytes) == (1, 4)
    entry = spool.pop()
    assert entry is not None
    with pytest.raises(SpoolError, match="cannot read spool file"):
        spool.read(entry)


def test_disk_full_raises_and_leaves_no_partial_file(tmp_path: Path, opened: list[Spool]) -> None:
    """A real EFBIG from the kernel (RLIMIT_FSIZE; Python ignores SIGXFSZ) stands in for ENOSPC."""
    spool = open_spool(opened, tmp_path)
    spool.append(b"fits", 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(SpoolError, match="File too large"):
            spool.append(b"x" * 4096, 9)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert [p.name.endswith(".tmp") for p in spool.dir.iterdir() if p.name != "lock"] == [False]
    spool.append(b"after", 1)  # the disk has room again: business as usual
    assert drain(spool) == [b"fits", b"after"]


def test_default_dir_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_spool_dir() == tmp_path / "flamehouse" / "spool"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_spool_dir() == Path(os.path.expanduser("~")) / ".local" / "state" / "flamehouse" / "spool"

"""The committed protobuf modules are exactly what proto/ generates."""

from __future__ import annotations

from pathlib import Path

from flamehouse.proto import generate


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    assert written, "nothing generated"
    for path in written:
        committed = generate.PROTO_ROOT / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.name} is stale: run python -m flamehouse.proto.generate"
        )


def test_ids_are_stable_across_releases() -> None:
    """Agents and collectors of different versions must agree: these values are part of the wire contract."""
    from flamehouse.proto import ids

    frame = ids.frame_id("step", "/job/train.py", 12)
    assert frame == ids.frame_id("step", "/job/train.py", 12)
    assert frame != ids.frame_id("step", "/job/train.py", 13)
    assert ids.function_id("step", "/job/train.py") != ids.function_id("step", "/job/other.py")
    assert 0 <= frame < 2**64
    assert ids.stack_id([1, 2]) != ids.stack_id([2, 1])
    # pinned values: changing the hash would orphan every stored profile
    assert frame == 8525568580656933789
    assert ids.function_id("step", "/job/train.py") == 3562830441622090954
    assert ids.stack_id([1, 2]) == 11868681386100499350

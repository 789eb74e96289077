"""Pure parts of the diff: parameter renaming and the merged tree."""

from __future__ import annotations

from flamehouse.collector.diff import DiffNode, DiffResult, FunctionChange, build_diff_tree, rebind


def test_rebind_renames_every_placeholder_and_parameter() -> None:
    sql = "ts >= toDateTime({t_from:UInt32}) AND labels[{s0_k:String}] = {s0_v:String} AND kind = {kind:String}"
    params = {"t_from": 1, "s0_k": "team", "s0_v": "ml", "kind": "cpu"}
    renamed, bound = rebind(sql, params, "b_")
    assert renamed == (
        "ts >= toDateTime({b_t_from:UInt32}) AND labels[{b_s0_k:String}] = {b_s0_v:String} AND kind = {b_kind:String}"
    )
    assert bound == {"b_t_from": 1, "b_s0_k": "team", "b_s0_v": "ml", "b_kind": "cpu"}


def test_tree_under_all_with_both_sides() -> None:
    # base: main→a (6 self), main→b (4 self); comparison: main→b (8), main→c (2); plus 1 unknown-stack sample each
    rows = [
        (1, 0, 1, "main", "m.py", 0, 10, 0, 10),
        (2, 1, 2, "a", "m.py", 6, 6, 0, 0),
        (3, 1, 2, "b", "m.py", 4, 4, 8, 8),
        (4, 1, 2, "c", "m.py", 0, 0, 2, 2),
    ]
    root, truncated = build_diff_tree(11, 11, rows)
    assert not truncated
    assert (root.name, root.base_self, root.base_total, root.comparison_self, root.comparison_total) == (
        "all", 1, 11, 1, 11
    )  # fmt: skip
    [main] = root.children
    # children by the larger of the two shares: b (8/11), a (6/11), c (2/11)
    assert [(c.name, c.base_total, c.comparison_total) for c in main.children] == [
        ("b", 4, 8),
        ("a", 6, 0),
        ("c", 0, 2),
    ]


def test_missing_children_mark_the_tree_truncated() -> None:
    _, truncated = build_diff_tree(10, 10, [(1, 0, 1, "main", "m.py", 0, 10, 0, 10)])
    assert truncated


def test_json_shape() -> None:
    node = DiffNode("all", "", 0, 2, 0, 4)
    change = FunctionChange("f", "f.py", 1, 3, 0.5, 0.75)
    body = DiffResult(2, 4, node, (change,), False, ("samples", "samples_1m")).to_json()
    assert body == {
        "base_total": 2,
        "comparison_total": 4,
        "truncated": False,
        "source": {"base": "samples", "comparison": "samples_1m"},
        "root": {"name": "all", "file": "", "base_self": 0, "base_total": 2, "comparison_self": 0,
                 "comparison_total": 4, "children": []},
        "changes": [{"function": "f", "file": "f.py", "base_self": 1, "comparison_self": 3, "base_share": 0.5,
                     "comparison_share": 0.75, "delta": 0.25}],
    }  # fmt: skip

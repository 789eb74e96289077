// Unit tests for ui/static/flame-model.js: flattening, paths, search, sandwich, diff.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ancestry,
  findPath,
  flattenTree,
  frameKey,
  makeMatcher,
  markMatches,
  matchedValue,
  nameOf,
  outermost,
  pathOf,
} from "../../../../ui/static/flame-model.js";
import { flattenDiff, sandwich } from "../../../../ui/static/flame-transforms.js";
import { DIFF_NEUTRAL } from "../../../../ui/static/colour.js";
import { sample } from "./fixtures.mjs";

test("flattenTree numbers nodes in preorder with depth, parent, start and subtree end", () => {
  const f = flattenTree(sample());
  assert.equal(f.count, 6);
  assert.deepEqual([...Array(f.count).keys()].map((i) => nameOf(f, i)), ["all", "main", "a", "c", "b", "c"]);
  assert.deepEqual([...f.depth], [0, 1, 2, 3, 2, 3]);
  assert.deepEqual([...f.parent], [-1, 0, 1, 2, 1, 4]);
  assert.deepEqual([...f.end], [6, 6, 4, 4, 6, 6]);
  assert.deepEqual([...f.start], [0, 0, 0, 0, 6, 6]);
  assert.deepEqual([...f.total], [10, 10, 6, 4, 3, 2]);
  assert.equal(f.maxDepth, 3);
  // the string table holds each name and file once
  assert.equal(f.strings.filter((s) => s === "c").length, 1);
  assert.equal(f.strings.filter((s) => s === "/app/util.py").length, 1);
  // same file, same colour
  assert.equal(f.colour[3], f.colour[5]);
});

test("flattenTree handles a tree deeper than the call stack would allow recursively", () => {
  let root = { name: "leaf", file: "x.py", self: 1, total: 1, children: [] };
  for (let d = 0; d < 20000; d += 1) root = { name: `f${d}`, file: "x.py", self: 0, total: 1, children: [root] };
  const f = flattenTree(root);
  assert.equal(f.count, 20001);
  assert.equal(f.maxDepth, 20000);
  assert.equal(f.end[0], 20001);
});

test("paths round-trip through findPath, and a vanished frame stops at the deepest match", () => {
  const f = flattenTree(sample());
  assert.deepEqual(pathOf(f, 5), ["main", "b", "c"]);
  assert.equal(findPath(f, ["main", "b", "c"]), 5);
  assert.equal(findPath(f, ["main", "zzz", "c"]), 1);
  assert.equal(findPath(f, []), 0);
  assert.deepEqual(ancestry(f, 3), [0, 1, 2, 3]);
});

test("frameKey includes the line when frames are split by line", () => {
  const f = flattenTree({ name: "all", total: 1, self: 0, children: [{ name: "f", file: "x.py", line: 12, self: 1, total: 1 }] });
  assert.equal(frameKey(f, 1), "f:12");
  assert.equal(findPath(f, ["f:12"]), 1);
});

test("makeMatcher: substring, case-insensitive; /regex/; empty or invalid is null", () => {
  assert.equal(makeMatcher("SPIN")("spin_one"), true);
  assert.equal(makeMatcher("/^spin_(one|two)$/")("spin_one"), true);
  assert.equal(makeMatcher("/^spin_(one|two)$/")("spin_three"), false);
  assert.equal(makeMatcher("  "), null);
  assert.equal(makeMatcher("/(/"), null);
});

test("matchedValue counts nested matches once and reports the matching frames", () => {
  const f = flattenTree(sample());
  const c = markMatches(f, (n) => n === "c");
  assert.deepEqual(matchedValue(f, c), { value: 6, nodes: 2 });
  const ac = markMatches(f, (n) => n === "a" || n === "c");
  assert.deepEqual(matchedValue(f, ac), { value: 8, nodes: 3 }); // a(6) covers its c; b's c adds 2
  assert.deepEqual(outermost(f, ac), [2, 5]);
  assert.deepEqual(matchedValue(f, c, 4), { value: 2, nodes: 1 }); // within b only
});

test("sandwich merges callers (inverted) and callees of every occurrence", () => {
  const f = flattenTree(sample());
  const s = sandwich(f, markMatches(f, (n) => n === "c"));
  assert.ok(s);
  assert.equal(s.total, 6);
  assert.equal(s.occurrences, 2);
  // callers: c ← a ← main (4) and c ← b ← main (2)
  assert.equal(s.callers.name, "c");
  assert.deepEqual(s.callers.children.map((n) => [n.name, n.total]), [["a", 4], ["b", 2]]);
  assert.deepEqual(s.callers.children[0].children.map((n) => [n.name, n.total, n.self]), [["main", 4, 4]]);
  // callees: c is a leaf everywhere
  assert.equal(s.callees.total, 6);
  assert.equal(s.callees.self, 6);
  assert.deepEqual(s.callees.children, []);
  // a sandwich of main: called from the root, calls a and b
  const m = sandwich(f, markMatches(f, (n) => n === "main"));
  assert.ok(m);
  assert.equal(m.callers.self, 10);
  assert.deepEqual(m.callees.children.map((n) => [n.name, n.total]), [["a", 6], ["b", 3]]);
  assert.equal(sandwich(f, markMatches(f, () => false)), null);
});

test("sandwich counts a recursive function once", () => {
  const rec = {
    name: "all", total: 5, self: 0,
    children: [{ name: "r", file: "r.py", total: 5, self: 1, children: [{ name: "r", file: "r.py", total: 4, self: 4, children: [] }] }],
  };
  const f = flattenTree(rec);
  const s = sandwich(f, markMatches(f, (n) => n === "r"));
  assert.ok(s);
  assert.equal(s.total, 5);
  assert.deepEqual(s.callees.children.map((n) => [n.name, n.total]), [["r", 4]]);
});

test("flattenDiff normalises each side and colours by the change of share", () => {
  const root = {
    name: "all", file: "", base_self: 0, base_total: 100, comparison_self: 0, comparison_total: 200,
    children: [
      { name: "same", file: "a.py", base_self: 50, base_total: 50, comparison_self: 100, comparison_total: 100, children: [] },
      { name: "grew", file: "a.py", base_self: 10, base_total: 10, comparison_self: 80, comparison_total: 80, children: [] },
      { name: "gone", file: "a.py", base_self: 40, base_total: 40, comparison_self: 20, comparison_total: 20, children: [] },
    ],
  };
  const f = flattenDiff(root, 100, 200);
  assert.equal(f.total[0], 1);
  assert.equal(f.total[1], 0.5); // 50% in both
  assert.equal(f.colour[1], DIFF_NEUTRAL);
  assert.ok(f.colour[2] > DIFF_NEUTRAL, "grew: red side");
  assert.ok(f.colour[3] < DIFF_NEUTRAL, "shrank: green side");
});

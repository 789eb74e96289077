// Unit tests for ui/static/flame-layout.js: visible frames, rows, hit-testing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { depthIndex, fitLabel, frameBuffers, frameRect, hitTest, rowTop, visibleFrames } from "../../../../ui/static/flame-layout.js";
import { flattenTree } from "../../../../ui/static/flame-model.js";
import { sample } from "./fixtures.mjs";

const vp = (zoom, orient = "icicle", rows = 4) => ({ zoom, width: 1000, rowHeight: 10, orient, rows });

test("visibleFrames at the root: every frame, x and width proportional to value", () => {
  const f = flattenTree(sample());
  const out = visibleFrames(f, 0, 1000, frameBuffers(f.count));
  assert.equal(out.count, 6);
  assert.deepEqual([...out.index.slice(0, 6)], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...out.x.slice(0, 6)], [0, 0, 0, 0, 600, 600]);
  assert.deepEqual([...out.w.slice(0, 6)], [1000, 1000, 600, 400, 300, 200]);
  assert.equal(out.maxDepth, 3);
});

test("visibleFrames zoomed: ancestors full width, only the zoomed subtree, rescaled", () => {
  const f = flattenTree(sample());
  const out = visibleFrames(f, 4, 1000, frameBuffers(f.count)); // zoom on b
  assert.deepEqual([...out.index.slice(0, out.count)], [0, 1, 4, 5]);
  assert.deepEqual([...out.w.slice(0, out.count)], [1000, 1000, 1000, (2 / 3) * 1000].map((v) => Math.fround(v)));
});

test("visibleFrames skips sub-pixel frames with their subtrees", () => {
  const f = flattenTree(sample());
  const out = visibleFrames(f, 0, 1000, frameBuffers(f.count), 250); // frames under 250 px hidden
  assert.deepEqual([...out.index.slice(0, out.count)], [0, 1, 2, 3, 4]);
});

test("rows: icicle puts the root on top, flame at the bottom", () => {
  assert.equal(rowTop(0, vp(0)), 0);
  assert.equal(rowTop(3, vp(0)), 30);
  assert.equal(rowTop(0, vp(0, "flame")), 30);
  assert.equal(rowTop(3, vp(0, "flame")), 0);
});

test("hitTest finds the frame under a point, in both orientations and when zoomed", () => {
  const f = flattenTree(sample());
  const rows = depthIndex(f);
  assert.equal(hitTest(f, rows, vp(0), 10, 5), 0);
  assert.equal(hitTest(f, rows, vp(0), 599, 25), 2);
  assert.equal(hitTest(f, rows, vp(0), 600, 25), 4);
  assert.equal(hitTest(f, rows, vp(0), 650, 35), 5);
  assert.equal(hitTest(f, rows, vp(0), 850, 35), -1); // right of b's c: b's self
  assert.equal(hitTest(f, rows, vp(0), 950, 25), -1); // main's self
  assert.equal(hitTest(f, rows, vp(0, "flame"), 650, 5), 5);
  assert.equal(hitTest(f, rows, vp(4), 10, 15), 1); // an ancestor of the zoom
  assert.equal(hitTest(f, rows, vp(4), 500, 35), 5); // b's c now spans 2/3
  assert.equal(hitTest(f, rows, vp(4), 800, 35), -1);
  assert.equal(hitTest(f, rows, vp(0), -1, 5), -1);
  assert.equal(hitTest(f, rows, vp(0), 10, 45), -1);
});

test("hitTest agrees with frameRect for every visible frame", () => {
  const f = flattenTree(sample());
  const rows = depthIndex(f);
  for (const zoom of [0, 1, 2, 4]) {
    const v = vp(zoom);
    const out = visibleFrames(f, zoom, v.width, frameBuffers(f.count));
    for (let k = 0; k < out.count; k += 1) {
      const i = out.index[k];
      const r = frameRect(f, i, v);
      assert.ok(r, `frame ${i} at zoom ${zoom}`);
      assert.equal(hitTest(f, rows, v, r.x + r.w / 2, r.y + r.h / 2), i);
    }
  }
});

test("fitLabel cuts with an ellipsis", () => {
  assert.equal(fitLabel("forward", 10), "forward");
  assert.equal(fitLabel("forward", 5), "forw\u2026");
  assert.equal(fitLabel("forward", 1), "");
});

// Unit tests for ui/static/raster.js: pixel words, spans, row replication, frame edges.
import assert from "node:assert/strict";
import { test } from "node:test";

import { hslToRgb, PALETTE, PALETTE_RGB } from "../../../../ui/static/colour.js";
import { fillRect, fillSpan, pixelWord, replicateRow, spanPixels } from "../../../../ui/static/raster.js";

test("pixelWord lays bytes out as RGBA in memory", () => {
  const px = new Uint32Array([pixelWord([1, 2, 3])]);
  assert.deepEqual([...new Uint8Array(px.buffer)], [1, 2, 3, 255]);
});

test("fillSpan clips to the scanline, short and long spans alike", () => {
  const px = new Uint32Array(2 * 40);
  fillSpan(px, 40, 40, -5, 3, 7); // second scanline, clipped on the left
  fillSpan(px, 40, 40, 10, 38, 9); // long span
  fillSpan(px, 40, 0, 38, 50, 5); // clipped on the right
  assert.deepEqual([...px.slice(40, 44)], [7, 7, 7, 0]);
  assert.equal(px.slice(50, 78).every((v) => v === 9), true);
  assert.equal(px[78], 0);
  assert.deepEqual([...px.slice(36, 40)], [0, 0, 5, 5]);
  assert.equal(px[40 + 38], 0); // did not spill onto the next scanline
});

test("replicateRow copies a band's first scanline down the band", () => {
  const px = new Uint32Array(4 * 3);
  px.set([1, 2, 3], 3);
  replicateRow(px, 3, 1, 3);
  assert.deepEqual([...px], [0, 0, 0, 1, 2, 3, 1, 2, 3, 0, 0, 0]);
  replicateRow(px, 3, 2, 99); // clipped at the bottom
  assert.deepEqual([...px.slice(9)], [1, 2, 3]);
});

test("fillRect fills and clips", () => {
  const px = new Uint32Array(3 * 3);
  fillRect(px, 3, 1, 1, 5, 5, 4);
  assert.deepEqual([...px], [0, 0, 0, 0, 4, 4, 0, 4, 4]);
});

test("spanPixels rounds edges, keeps a gap after wide frames, never vanishes", () => {
  assert.deepEqual(spanPixels(10.2, 20, 1), [10, 29]);
  assert.deepEqual(spanPixels(10.2, 20, 2), [20, 58]);
  assert.deepEqual(spanPixels(10.2, 0.1, 1), [10, 11]);
  assert.deepEqual(spanPixels(0, 2.4, 1), [0, 2]);
});

test("hslToRgb matches CSS, and every palette colour converts", () => {
  assert.deepEqual(hslToRgb(0, 100, 50), [255, 0, 0]);
  assert.deepEqual(hslToRgb(120, 100, 25), [0, 128, 0]);
  assert.deepEqual(hslToRgb(220, 10, 93), [235, 237, 239]);
  assert.equal(PALETTE_RGB.length, PALETTE.length);
  assert.ok(PALETTE_RGB.every((c) => c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)));
});

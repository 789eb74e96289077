// Unit tests for the small pure helpers: selector completion, colours, formatting, chart axes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { niceTicks, timeTicks } from "../../../../ui/static/chart.js";
import { colourIndex, diffColourIndex, DIFF_NEUTRAL, NEUTRAL, packageOf, PALETTE } from "../../../../ui/static/colour.js";
import { fmtBytes, fmtCount, fmtDeltaPP, fmtMoney, fmtPct, fmtSeconds, shortFile } from "../../../../ui/static/format.js";
import { applyCompletion, completionContext, rankCandidates } from "../../../../ui/static/selector.js";

test("completionContext tells label names from values", () => {
  assert.deepEqual(completionContext("", 0), { type: "name", prefix: "", start: 0 });
  assert.deepEqual(completionContext("{serv", 5), { type: "name", prefix: "serv", start: 1 });
  assert.deepEqual(completionContext('{a="x", h', 9), { type: "name", prefix: "h", start: 8 });
  assert.deepEqual(completionContext('{service="tr', 12), { type: "value", name: "service", op: "=", prefix: "tr", start: 10 });
  assert.deepEqual(completionContext('{host=~"gpu-', 12), { type: "value", name: "host", op: "=~", prefix: "gpu-", start: 8 });
  assert.equal(completionContext('{a="x, y', 8).type, "value"); // a comma inside a value
  assert.equal(completionContext('{a="x"', 6), null);
});

test("applyCompletion inserts names with an empty value and closes values", () => {
  const name = applyCompletion("{serv", 5, completionContext("{serv", 5), "service");
  assert.deepEqual(name, { text: '{service=""}', caret: 10 });
  const bare = applyCompletion("", 0, completionContext("", 0), "job");
  assert.deepEqual(bare, { text: '{job=""}', caret: 6 });
  const value = applyCompletion('{service=""}', 10, completionContext('{service=""}', 10), "trainer");
  assert.deepEqual(value, { text: '{service="trainer"}', caret: 18 });
  const quoted = applyCompletion('{a="', 4, completionContext('{a="', 4), 'say "hi"');
  assert.equal(quoted.text, '{a="say \\"hi\\""}');
});

test("rankCandidates puts prefix matches first", () => {
  assert.deepEqual(rankCandidates(["job", "host", "pod", "hostname"], "ho"), ["host", "hostname"]);
  assert.deepEqual(rankCandidates(["a-train", "trainer"], "train"), ["trainer", "a-train"]);
});

test("colours are stable per package and module", () => {
  assert.deepEqual(packageOf("/usr/lib/python3/dist-packages/torch/nn/modules/linear.py"), { package: "torch", module: "torch.nn" });
  assert.deepEqual(packageOf("/usr/lib/python3.11/json/decoder.py"), { package: "json", module: "json.decoder" });
  assert.deepEqual(packageOf("/work/train.py"), { package: "train", module: "train" });
  assert.equal(packageOf(""), null);
  assert.equal(colourIndex(""), NEUTRAL);
  const a = colourIndex("/x/site-packages/torch/nn/functional.py");
  const b = colourIndex("/other/venv/site-packages/torch/nn/modules/conv.py");
  assert.equal(a, b); // same package and module, whatever the install path
  assert.ok(PALETTE[a].startsWith("hsl("));
});

test("diff colours: neutral for small changes, red for growth, green for shrinkage", () => {
  assert.equal(diffColourIndex(0.2, 0.2005), DIFF_NEUTRAL);
  assert.ok(diffColourIndex(0.1, 0.3) > DIFF_NEUTRAL);
  assert.ok(diffColourIndex(0.3, 0.1) < DIFF_NEUTRAL);
  assert.ok(diffColourIndex(0.1, 0.9) > diffColourIndex(0.1, 0.15));
});

test("formatting", () => {
  assert.equal(fmtCount(1234567), "1,234,567");
  assert.equal(fmtPct(1, 4), "25.0%");
  assert.equal(fmtPct(1, 400), "0.25%");
  assert.equal(fmtPct(0, 0), "0%");
  assert.equal(fmtSeconds(1.234), "1.23 s");
  assert.equal(fmtSeconds(125), "2m 05s");
  assert.equal(fmtSeconds(7380), "2h 03m");
  assert.equal(fmtBytes(1536 * 1024 * 1024), "1.5 GiB");
  assert.equal(fmtMoney(1.234), "$1.23");
  assert.equal(fmtMoney(0.0042), "$0.0042");
  assert.equal(fmtDeltaPP(0.032), "+3.2 pp");
  assert.equal(fmtDeltaPP(-0.0041), "\u22120.41 pp");
  assert.equal(shortFile("/a/b/c/d.py"), "\u2026/c/d.py");
});

test("chart axes: round ticks", () => {
  assert.deepEqual(niceTicks(100), [0, 25, 50, 75, 100]);
  assert.deepEqual(niceTicks(7), [0, 2, 4, 6, 8]);
  assert.deepEqual(niceTicks(0), [0, 1]);
  const t = timeTicks(1_700_000_000, 1_700_003_600, 800);
  assert.ok(t.length >= 4 && t.length <= 12, String(t.length));
  assert.ok(t.every((x, k) => k === 0 || x - t[k - 1] === t[1] - t[0]));
});

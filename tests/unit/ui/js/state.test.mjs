// Unit tests for ui/static/state.js: the URL is the state.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS, decodePath, diffParams, encodePath, formatState, parseState, queryParams, withChanges } from "../../../../ui/static/state.js";

test("a shared link with API parameter names opens that query", () => {
  const s = parseState('?selector={service="trainer"}&from=now-1h');
  assert.equal(s.selector, '{service="trainer"}');
  assert.equal(s.from, "now-1h");
  assert.equal(s.view, "flame");
  assert.deepEqual(queryParams(s), { selector: '{service="trainer"}', from: "now-1h", kind: "cpu" });
});

test("formatState leaves defaults out and keeps selectors readable", () => {
  assert.equal(formatState({ ...DEFAULTS }), "");
  const s = { ...DEFAULTS, selector: '{service="a b", host=~"gpu-.*"}', kind: "wall", search: "x&y" };
  const q = formatState(s);
  assert.equal(q, '?selector={service="a%20b",%20host=~"gpu-.*"}&kind=wall&search=x%26y');
  assert.deepEqual(parseState(q), s);
});

test("every state round-trips through the URL", () => {
  const s = {
    ...DEFAULTS, view: "diff", from: "1700000000", to: "1700003600", gpu_state: "idle", zoom: encodePath(["a;b", "c\\d"]),
    orient: "flame", by: "line", base: '{job="1"}', comparison_from: "now-5m", cpu_price: "0.1", focus: "f", focus_line: "3",
  };
  assert.deepEqual(parseState(formatState(s)), s);
});

test("invalid enumerations fall back to defaults", () => {
  const s = parseState("?view=nope&kind=gpu&gpu_state=maybe&orient=sideways&by=file");
  assert.equal(s.view, "flame");
  assert.equal(s.kind, "cpu");
  assert.equal(s.gpu_state, "any");
  assert.equal(s.orient, "icicle");
  assert.equal(s.by, "function");
});

test("changing the query drops the zoom; view changes keep it", () => {
  const s = { ...DEFAULTS, zoom: "main;f" };
  assert.equal(withChanges(s, { selector: "{}" }).zoom, "");
  assert.equal(withChanges(s, { view: "top" }).zoom, "main;f");
  assert.equal(withChanges(s, { selector: "{}", zoom: "x" }).zoom, "x");
});

test("zoom paths escape separators", () => {
  const keys = ["process 1:\"a;b\"", "back\\slash", "plain"];
  assert.deepEqual(decodePath(encodePath(keys)), keys);
  assert.deepEqual(decodePath(""), []);
});

test("diff parameters default each side to the main query", () => {
  const s = { ...DEFAULTS, selector: '{service="t"}', from: "now-30m" };
  assert.deepEqual(diffParams(s), {
    base: '{service="t"}', base_from: "now-2h", base_to: "now-1h",
    comparison: '{service="t"}', comparison_from: "now-30m", kind: "cpu",
  });
});

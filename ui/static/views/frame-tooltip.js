/**
 * The tooltip of a profile frame (flame graph and sandwich views): function, file:line,
 * total and self as samples, share and CPU-seconds.
 * @module views/frame-tooltip
 */

import { h } from "../dom.js";
import { fileOf, nameOf } from "../flame-model.js";
import { fmtCount, fmtPct, fmtSeconds } from "../format.js";

/** @typedef {import("../flame-model.js").Flame} Flame */

/**
 * Tooltip lines for node `i` of a profile flame graph.
 * @param {Flame} f
 * @param {number} i
 * @param {{rate: number, unit: string, zoom: number, all?: number, hint?: string}} ctx
 *   `all`: the value percentages are of (default the root's); `hint`: the last line
 * @returns {Node[]}
 */
export function describeFrame(f, i, ctx) {
  const all = ctx.all ?? f.total[0];
  const file = fileOf(f, i);
  const where = file ? `${file}${f.line[i] ? `:${f.line[i]}` : ""}` : "";
  const rows = [
    h("div", { class: "tt-title" }, nameOf(f, i)),
    where ? h("div", { class: "tt-file" }, where) : null,
    h(
      "table",
      { class: "tt-table" },
      h(
        "tr",
        null,
        h("th", null, "total"),
        h("td", null, fmtCount(f.total[i])),
        h("td", null, fmtPct(f.total[i], all)),
        h("td", null, `${fmtSeconds(f.total[i] / ctx.rate)} ${ctx.unit}`),
      ),
      h(
        "tr",
        null,
        h("th", null, "self"),
        h("td", null, fmtCount(f.self[i])),
        h("td", null, fmtPct(f.self[i], all)),
        h("td", null, `${fmtSeconds(f.self[i] / ctx.rate)} ${ctx.unit}`),
      ),
    ),
    ctx.zoom > 0 && i !== ctx.zoom
      ? h("div", { class: "tt-note" }, `${fmtPct(f.total[i], f.total[ctx.zoom])} of the zoomed frame`)
      : null,
    h("div", { class: "tt-note" }, ctx.hint ?? "click to zoom"),
  ];
  return /** @type {Node[]} */ (rows.filter(Boolean));
}

/**
 * The diff view: two selectors and/or time ranges; a flame graph whose frames are
 * coloured by the change of their share of each profile (normalised: red grew, green
 * shrank) and a table of the largest changes. Reads `GET /api/v1/diff`.
 * @module views/diff
 */

import { h, replace, errorBox, emptyState, tooltip, sortableHead, sortRows } from "../dom.js";
import { FlameGraph } from "../flame.js";
import { DIFF_BASE, DIFF_NEUTRAL, DIFF_STEPS, PALETTE } from "../colour.js";
import { fileOf, nameOf } from "../flame-model.js";
import { flattenDiff } from "../flame-transforms.js";
import { fmtCount, fmtDeltaPP, fmtShare, shortFile } from "../format.js";
import { diffParams } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../flame-model.js").Flame} Flame
 * @typedef {import("../app.js").App} App
 * @typedef {{function: string, file: string, base_share: number, comparison_share: number, delta: number}} Change
 */

const FIELDS = /** @type {const} */ ([
  ["base", "base_from", "base_to", "Base"],
  ["comparison", "comparison_from", "comparison_to", "Comparison"],
]);

export class DiffView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-diff", class: "view", "aria-label": "Diff" });
    /** @type {Record<string, HTMLInputElement>} */
    this.inputs = {};
    const rows = FIELDS.map(([sel, from, to, label]) => {
      const mk = (/** @type {string} */ key, /** @type {string} */ placeholder, /** @type {string} */ cls) => {
        const input = /** @type {HTMLInputElement} */ (
          h("input", { type: "text", class: cls, placeholder, "aria-label": `${label} ${key.split("_").pop()}`, spellcheck: "false" })
        );
        this.inputs[key] = input;
        return input;
      };
      return h(
        "div",
        { class: "diff-row" },
        h("span", { class: `diff-tag ${sel}` }, label),
        mk(sel, "selector (empty: the query bar's)", "selector-input"),
        h("span", { class: "lbl" }, "from"),
        mk(from, "now-2h", "time-input"),
        h("span", { class: "lbl" }, "to"),
        mk(to, "now", "time-input"),
      );
    });
    const form = h(
      "form",
      {
        class: "diff-form",
        onsubmit: (/** @type {Event} */ e) => {
          e.preventDefault();
          /** @type {Record<string, string>} */
          const changes = {};
          for (const [k, input] of Object.entries(this.inputs)) changes[k] = input.value.trim();
          this.app.navigate(changes, { refresh: true });
        },
      },
      h("div", { class: "diff-rows" }, rows),
      h("button", { type: "submit", class: "btn primary" }, "Compare"),
    );
    this.legend = h("div", { class: "legend" });
    this.summary = h("div", { class: "summary" });
    this.body = h("div", { class: "diff-body" });
    this.host = h("div", { class: "flame-graph" });
    this.tableWrap = h("div", { class: "table-wrap" });
    this.el.append(form, h("div", { class: "subbar" }, this.legend, this.summary), this.body, this.host, this.tableWrap);
    this.graph = new FlameGraph(this.host, {
      label: "diff flame graph",
      onClick: (i) => {
        this.graph.setZoom(i === this.graph.zoom ? 0 : i);
        this.graph.draw();
      },
      onHover: (i, e) => this._hover(i, e),
    });
    this.token = 0;
    this.baseTotal = 0;
    this.comparisonTotal = 0;
    /** @type {Change[]} */
    this.changes = [];
    new ResizeObserver(() => {
      if (!this.el.hidden && !this.host.hidden) this.graph.draw();
    }).observe(this.host);
  }

  /** @param {State} state */
  async show(state) {
    const p = diffParams(state);
    for (const [k, input] of Object.entries(this.inputs)) {
      if (document.activeElement === input) continue;
      input.value = /** @type {any} */ (state)[k] || "";
      input.placeholder = k === "base" || k === "comparison" ? p[k] || "{} (everything)" : p[k] || "now";
    }
    this._legend();
    const token = ++this.token;
    this.el.dataset.status = "loading";
    this.host.hidden = true;
    replace(this.tableWrap);
    replace(this.summary);
    replace(this.body, h("div", { class: "loading" }, "Comparing\u2026"));
    let data;
    try {
      this.app.caps.require("/api/v1/diff");
      data = await this.app.cache.get("/api/v1/diff", p);
    } catch (err) {
      if (token !== this.token) return;
      this.el.dataset.status = "error";
      replace(this.body, errorBox(err, "loading the diff"));
      return;
    }
    if (token !== this.token) return;
    if (!data.base_total || !data.comparison_total) {
      this.el.dataset.status = "empty";
      const which = !data.base_total && !data.comparison_total ? "Neither profile" : !data.base_total ? "The base profile" : "The comparison profile";
      replace(this.body, emptyState(`${which} has samples`, h("p", null, "Change the selectors or time ranges above; each side needs samples to compare shares.")));
      return;
    }
    replace(this.body);
    this.baseTotal = data.base_total;
    this.comparisonTotal = data.comparison_total;
    replace(this.summary, `base ${fmtCount(data.base_total)} samples \u00b7 comparison ${fmtCount(data.comparison_total)} samples`);
    this.host.hidden = false;
    this.graph.setData(flattenDiff(data.root, data.base_total, data.comparison_total));
    this.graph.draw();
    this.changes = data.changes ?? [];
    this._table(state);
    this.el.dataset.status = "ready";
  }

  hide() {
    tooltip.hide();
  }

  _legend() {
    const swatch = (/** @type {number} */ i) => h("span", { class: "swatch", style: `background:${PALETTE[i]}` });
    replace(
      this.legend,
      h("span", { class: "muted" }, "share shrank "),
      swatch(DIFF_BASE),
      swatch(DIFF_BASE + Math.floor(DIFF_STEPS / 2)),
      swatch(DIFF_NEUTRAL),
      swatch(DIFF_NEUTRAL + Math.ceil(DIFF_STEPS / 2)),
      swatch(DIFF_NEUTRAL + DIFF_STEPS),
      h("span", { class: "muted" }, " grew \u2014 width: mean share of both profiles"),
    );
  }

  /** @param {State} state */
  _table(state) {
    const rows = this.changes.slice();
    const sort = state.sort && /^-?(function|file|base_share|comparison_share|delta|magnitude)$/.test(state.sort) ? state.sort : "magnitude";
    sortRows(rows, sort, {
      function: (r) => r.function,
      file: (r) => r.file,
      base_share: (r) => r.base_share,
      comparison_share: (r) => r.comparison_share,
      delta: (r) => r.delta,
      magnitude: (r) => Math.abs(r.delta),
    });
    const columns = [
      { key: "function", label: "Function" },
      { key: "file", label: "File" },
      { key: "base_share", label: "Base", num: true },
      { key: "comparison_share", label: "Comparison", num: true },
      { key: "delta", label: "Change", num: true },
      { key: "magnitude", label: "|Change|", num: true },
    ];
    const max = Math.max(1e-9, ...rows.map((r) => Math.abs(r.delta)));
    replace(
      this.tableWrap,
      h("h3", { class: "section-title" }, "Largest changes of share"),
      h(
        "table",
        { class: "data" },
        sortableHead({ columns, sort, onSort: (s) => this.app.navigate({ sort: s }, { replace: true }) }),
        h(
          "tbody",
          null,
          rows.slice(0, 200).map((r) =>
            h(
              "tr",
              null,
              h("td", { class: "fn" }, r.function),
              h("td", { class: "file", title: r.file }, shortFile(r.file, 3)),
              h("td", { class: "num" }, fmtShare(r.base_share)),
              h("td", { class: "num" }, fmtShare(r.comparison_share)),
              h("td", { class: `num ${r.delta > 0 ? "worse" : r.delta < 0 ? "better" : ""}` }, fmtDeltaPP(r.delta)),
              h(
                "td",
                { class: "num" },
                h("span", { class: `delta-bar ${r.delta > 0 ? "worse" : "better"}`, style: `--w:${(Math.abs(r.delta) / max) * 100}%` }),
              ),
            ),
          ),
        ),
      ),
    );
  }

  /**
   * @param {number} i
   * @param {MouseEvent | null} e
   */
  _hover(i, e) {
    const f = this.graph.flame;
    if (!f || i < 0 || !e) {
      tooltip.hide();
      return;
    }
    const node = /** @type {any} */ (f.nodes[i]);
    const b = (node.base_total ?? 0) / (this.baseTotal || 1);
    const c = (node.comparison_total ?? 0) / (this.comparisonTotal || 1);
    const file = fileOf(f, i);
    tooltip.show(e, [
      h("div", { class: "tt-title" }, nameOf(f, i)),
      file ? h("div", { class: "tt-file" }, file) : "",
      h(
        "table",
        { class: "tt-table" },
        h("tr", null, h("th", null, "base"), h("td", null, fmtCount(node.base_total ?? 0)), h("td", null, fmtShare(b))),
        h("tr", null, h("th", null, "comparison"), h("td", null, fmtCount(node.comparison_total ?? 0)), h("td", null, fmtShare(c))),
        h("tr", null, h("th", null, "change"), h("td", null, ""), h("td", { class: c > b ? "worse" : c < b ? "better" : "" }, fmtDeltaPP(c - b))),
      ),
      h("div", { class: "tt-note" }, "click to zoom, again to reset"),
    ].filter((x) => x !== ""));
  }
}

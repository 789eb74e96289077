/**
 * The top table: functions by self and total samples, sortable and filterable; clicking
 * a row focuses that function in the flame graph.
 * @module views/top
 */

import { h, replace, errorBox, emptyState, runHint, sortableHead, sortRows } from "../dom.js";
import { fmtCount, fmtPct, fmtSeconds, shortFile } from "../format.js";
import { queryParams } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../app.js").App} App
 * @typedef {{function: string, file: string, self: number, total: number}} Fn
 */

/** Rows drawn at most; the filter narrows the rest. */
const MAX_ROWS = 500;

export class TopView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-top", class: "view", "aria-label": "Top functions" });
    this.filter = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "search",
        class: "search",
        placeholder: "Filter functions and files   /",
        "aria-label": "Filter functions",
        oninput: () => {
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.app.navigate({ filter: this.filter.value }, { replace: true }), 150);
        },
      })
    );
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.info = h("span", { class: "summary" });
    this.body = h("div", { class: "table-wrap" });
    this.el.append(h("div", { class: "toolbar" }, this.filter, h("span", { class: "spacer" }), this.info), this.body);
    this.token = 0;
    /** @type {any} */
    this.data = null;
    this.loadedKey = "";
  }

  /** @param {State} state */
  async show(state) {
    if (document.activeElement !== this.filter) this.filter.value = state.filter;
    const params = { ...queryParams(state), limit: 2000 };
    const key = `${this.app.generation} ${JSON.stringify(params)}`;
    if (key !== this.loadedKey || !this.data) {
      const token = ++this.token;
      this.el.dataset.status = "loading";
      replace(this.body, h("div", { class: "loading" }, "Loading top functions\u2026"));
      try {
        const data = await this.app.cache.get("/api/v1/top", params);
        if (token !== this.token) return;
        this.data = data;
        this.loadedKey = key;
      } catch (err) {
        if (token !== this.token) return;
        this.data = null;
        this.el.dataset.status = "error";
        replace(this.body, errorBox(err, "loading top functions"));
        return;
      }
    }
    this._render(state);
  }

  /** @param {State} state */
  _render(state) {
    const data = this.data;
    const total = data.total_samples;
    if (!total) {
      this.el.dataset.status = "empty";
      replace(this.info);
      this.app.noData(state).then((none) =>
        replace(
          this.body,
          none ? emptyState("Nothing was profiled in this time range", runHint()) : emptyState("No samples match this selector and time range", h("p", null, "Widen the time range or change the selector.")),
        ),
      );
      return;
    }
    const rate = Number(state.rate) || 99;
    const unit = state.kind === "wall" ? "wall-s" : "CPU-s";
    const needle = state.filter.trim().toLowerCase();
    /** @type {Fn[]} */
    const rows = data.functions.filter(
      (/** @type {Fn} */ f) => !needle || f.function.toLowerCase().includes(needle) || f.file.toLowerCase().includes(needle),
    );
    const sort = state.sort || "self";
    sortRows(rows, sort, {
      function: (r) => r.function,
      file: (r) => r.file,
      self: (r) => r.self,
      self_share: (r) => r.self,
      self_seconds: (r) => r.self,
      total: (r) => r.total,
      total_share: (r) => r.total,
      total_seconds: (r) => r.total,
    });
    const columns = [
      { key: "function", label: "Function" },
      { key: "file", label: "File" },
      { key: "self", label: "Self", num: true, title: "samples where the function itself was running" },
      { key: "self_share", label: "Self %", num: true },
      { key: "self_seconds", label: `Self ${unit}`, num: true },
      { key: "total", label: "Total", num: true, title: "samples where the function was on the stack" },
      { key: "total_share", label: "Total %", num: true },
      { key: "total_seconds", label: `Total ${unit}`, num: true },
    ];
    const head = sortableHead({ columns, sort, onSort: (s) => this.app.navigate({ sort: s }, { replace: true }) });
    const body = h(
      "tbody",
      null,
      rows.slice(0, MAX_ROWS).map((r) =>
        h(
          "tr",
          {
            class: "clickable",
            tabindex: "0",
            title: "Show in the flame graph",
            dataset: { function: r.function },
            onclick: () => this._focus(r),
            onkeydown: (/** @type {KeyboardEvent} */ e) => e.key === "Enter" && this._focus(r),
          },
          h("td", { class: "fn" }, h("span", { class: "bar", style: `--w:${(r.self / total) * 100}%` }), r.function),
          h("td", { class: "file", title: r.file }, shortFile(r.file, 3)),
          h("td", { class: "num" }, fmtCount(r.self)),
          h("td", { class: "num" }, fmtPct(r.self, total)),
          h("td", { class: "num" }, fmtSeconds(r.self / rate)),
          h("td", { class: "num" }, fmtCount(r.total)),
          h("td", { class: "num" }, fmtPct(r.total, total)),
          h("td", { class: "num" }, fmtSeconds(r.total / rate)),
        ),
      ),
    );
    replace(
      this.info,
      `${fmtCount(rows.length)} of ${fmtCount(data.functions.length)} functions \u00b7 ${fmtCount(total)} samples`,
      rows.length > MAX_ROWS ? ` \u00b7 first ${MAX_ROWS} shown` : "",
    );
    replace(this.body, h("table", { class: "data" }, head, body));
    this.el.dataset.status = "ready";
  }

  /** @param {Fn} r */
  _focus(r) {
    this.app.navigate({ view: "flame", focus: r.function, focus_file: r.file, focus_line: "", search: "", zoom: "" });
  }

  /** @param {KeyboardEvent} e */
  onKey(e) {
    if (e.key === "/") {
      e.preventDefault();
      this.filter.focus();
      return true;
    }
    return false;
  }
}

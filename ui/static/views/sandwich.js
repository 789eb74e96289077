/**
 * The sandwich view: for one function, its callers (inverted, the function at the
 * bottom) above and its callees below, computed client-side from the flame graph.
 * Clicking a frame in either half makes that function the sandwich's filling.
 * @module views/sandwich
 */

import { h, replace, errorBox, emptyState, tooltip } from "../dom.js";
import { FlameGraph } from "../flame.js";
import { fileOf, flattenTree, markMatches, nameOf } from "../flame-model.js";
import { sandwich } from "../flame-transforms.js";
import { fmtCount, fmtPct, fmtSeconds, shortFile } from "../format.js";
import { describeFrame } from "./frame-tooltip.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../flame-model.js").Flame} Flame
 * @typedef {import("../app.js").App} App
 */

export class SandwichView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-sandwich", class: "view", "aria-label": "Sandwich" });
    this.input = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "search",
        class: "search wide",
        list: "sandwich-functions",
        placeholder: "Function name",
        "aria-label": "Function for the sandwich view",
        onkeydown: (/** @type {KeyboardEvent} */ e) => {
          if (e.key === "Enter") this._choose(this.input.value.trim(), "");
        },
        onchange: () => this._choose(this.input.value.trim(), ""),
      })
    );
    this.options = h("datalist", { id: "sandwich-functions" });
    this.info = h("span", { class: "summary" });
    this.body = h("div", { class: "sandwich-body" });
    this.callersHost = h("div", { class: "flame-graph" });
    this.calleesHost = h("div", { class: "flame-graph" });
    this.halves = h(
      "div",
      { class: "sandwich-halves" },
      h("div", { class: "half-label" }, "\u25B2 Callers ", h("span", { class: "muted" }, "(who calls it; outermost at the top)")),
      this.callersHost,
      h("div", { class: "half-label" }, "\u25BC Callees ", h("span", { class: "muted" }, "(what it calls)")),
      this.calleesHost,
    );
    this.el.append(
      h("div", { class: "toolbar" }, h("label", { class: "lbl" }, "Function"), this.input, this.options, h("span", { class: "spacer" }), this.info),
      this.body,
      this.halves,
    );
    const hover = (/** @type {() => FlameGraph} */ graph) => (/** @type {number} */ i, /** @type {MouseEvent | null} */ e) =>
      this._hover(graph(), i, e);
    /** @type {FlameGraph} */
    this.callers = new FlameGraph(this.callersHost, {
      label: "callers flame graph",
      onClick: (i) => this._pick(this.callers, i),
      onHover: hover(() => this.callers),
    });
    /** @type {FlameGraph} */
    this.callees = new FlameGraph(this.calleesHost, {
      label: "callees flame graph",
      onClick: (i) => this._pick(this.callees, i),
      onHover: hover(() => this.callees),
    });
    this.callers.setOrient("flame");
    this.token = 0;
    this.profileTotal = 0;
    new ResizeObserver(() => {
      if (!this.el.hidden && this.halves.hidden === false) {
        this.callers.draw();
        this.callees.draw();
      }
    }).observe(this.el);
  }

  /** @param {State} state */
  async show(state) {
    this.input.value = state.fn;
    const token = ++this.token;
    this.el.dataset.status = "loading";
    this.halves.hidden = true;
    replace(this.body, h("div", { class: "loading" }, "Loading profile\u2026"));
    let profile;
    try {
      profile = await this.app.profile(state);
    } catch (err) {
      if (token !== this.token) return;
      this.el.dataset.status = "error";
      replace(this.body, errorBox(err, "loading the flame graph"));
      return;
    }
    if (token !== this.token) return;
    const f = profile.flame;
    if (!f || !profile.data.total_samples) {
      this.el.dataset.status = "empty";
      replace(this.body, emptyState("No samples match this selector and time range", h("p", null, "Widen the time range or change the selector.")));
      return;
    }
    this._fillOptions(f);
    if (!state.fn) {
      this._pickPrompt(f);
      return;
    }
    const marks = markMatches(f, (name, file) => name === state.fn && (!state.fn_file || file === state.fn_file));
    const result = sandwich(f, marks);
    if (!result) {
      this.el.dataset.status = "empty";
      replace(this.body, emptyState(`${state.fn} is not in this profile`, h("p", null, "Pick another function, or widen the time range.")));
      return;
    }
    replace(this.body);
    this.profileTotal = f.total[0];
    const rate = Number(state.rate) || 99;
    const unit = state.kind === "wall" ? "wall-s" : "CPU-s";
    replace(
      this.info,
      h("code", null, state.fn),
      state.fn_file ? ` ${shortFile(state.fn_file, 3)}` : "",
      ` \u2014 total ${fmtPct(result.total, f.total[0])} (${fmtSeconds(result.total / rate)} ${unit}), self ${fmtPct(result.callees.self ?? 0, f.total[0])}, ${fmtCount(result.occurrences)} call path${result.occurrences === 1 ? "" : "s"}`,
    );
    this.halves.hidden = false;
    this.callers.setData(flattenTree(result.callers));
    this.callees.setData(flattenTree(result.callees));
    this.callers.draw();
    this.callees.draw();
    this.el.dataset.status = "ready";
  }

  hide() {
    tooltip.hide();
  }

  /** @param {Flame} f */
  _fillOptions(f) {
    /** @type {Map<string, number>} */
    const totals = new Map();
    for (let i = 1; i < f.count; i += 1) {
      const n = nameOf(f, i);
      totals.set(n, (totals.get(n) ?? 0) + f.self[i]);
    }
    const names = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 300);
    replace(this.options, ...names.map(([n]) => h("option", { value: n })));
  }

  /** @param {Flame} f */
  _pickPrompt(f) {
    /** @type {Map<string, {file: string, self: number}>} */
    const best = new Map();
    for (let i = 1; i < f.count; i += 1) {
      const n = nameOf(f, i);
      const cur = best.get(n);
      if (!cur) best.set(n, { file: fileOf(f, i), self: f.self[i] });
      else cur.self += f.self[i];
    }
    const top = [...best.entries()].sort((a, b) => b[1].self - a[1].self).slice(0, 8);
    replace(this.info);
    replace(
      this.body,
      emptyState(
        "Pick a function",
        h("p", null, "The sandwich shows who calls a function and what it calls. Functions with the most self time:"),
        h(
          "div",
          { class: "chips" },
          top.map(([n, v]) => h("button", { type: "button", class: "chip", onclick: () => this._choose(n, v.file) }, n)),
        ),
      ),
    );
    this.el.dataset.status = "empty";
  }

  /**
   * @param {FlameGraph} graph
   * @param {number} i
   */
  _pick(graph, i) {
    const f = graph.flame;
    if (!f) return;
    this._choose(nameOf(f, i), fileOf(f, i));
  }

  /**
   * @param {string} fn
   * @param {string} file
   */
  _choose(fn, file) {
    if (fn === this.app.state.fn && file === this.app.state.fn_file) return;
    this.app.navigate({ fn, fn_file: file });
  }

  /**
   * @param {FlameGraph} graph
   * @param {number} i
   * @param {MouseEvent | null} e
   */
  _hover(graph, i, e) {
    const f = graph.flame;
    if (!f || i < 0 || !e) {
      tooltip.hide();
      return;
    }
    const s = this.app.state;
    tooltip.show(
      e,
      describeFrame(f, i, {
        rate: Number(s.rate) || 99,
        unit: s.kind === "wall" ? "wall-s" : "CPU-s",
        zoom: 0,
        all: this.profileTotal,
        hint: "click to make this the sandwich's function",
      }),
    );
  }
}

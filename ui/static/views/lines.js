/**
 * The lines view: cost per source line — CPU-seconds, GPU-busy and GPU-idle seconds and
 * what they cost at configurable prices — each line linking to its frames in the flame
 * graph. Reads `GET /api/v1/lines`.
 * @module views/lines
 */

import { h, replace, errorBox, emptyState, runHint, sortableHead, sortRows } from "../dom.js";
import { fmtCount, fmtMoney, fmtSeconds, shortFile } from "../format.js";
import { formatState, queryParams, withChanges } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../app.js").App} App
 * @typedef {{file: string, line: number, function: string, self: number, total: number,
 *   cpu_seconds: number, gpu_busy_seconds: number, gpu_idle_seconds: number}} Line
 */

/**
 * What a line costs: CPU at `cpuPrice` per core-hour plus the GPU time spent (busy) and
 * wasted (idle) at that line at `gpuPrice` per GPU-hour.
 * @param {Line} line
 * @param {number} cpuPrice
 * @param {number} gpuPrice
 * @returns {{cpu: number, gpuIdle: number, total: number}}
 */
export function lineCost(line, cpuPrice, gpuPrice) {
  const cpu = (line.cpu_seconds / 3600) * cpuPrice;
  const gpuIdle = (line.gpu_idle_seconds / 3600) * gpuPrice;
  const gpuBusy = (line.gpu_busy_seconds / 3600) * gpuPrice;
  return { cpu, gpuIdle, total: cpu + gpuIdle + gpuBusy };
}

export class LinesView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-lines", class: "view", "aria-label": "Lines" });
    const price = (/** @type {string} */ key, /** @type {string} */ label, /** @type {string} */ title) => {
      const input = /** @type {HTMLInputElement} */ (
        h("input", {
          type: "number",
          min: "0",
          step: "any",
          class: "num-input",
          title,
          "aria-label": label,
          onchange: () => this.app.navigate({ [key]: input.value }, { replace: true }),
        })
      );
      return { input, el: h("label", { class: "lbl", title }, label, " ", input) };
    };
    this.cpuPrice = price("cpu_price", "CPU $/core-h", "Price of one CPU core for one hour");
    this.gpuPrice = price("gpu_price", "GPU $/h", "Price of one GPU for one hour");
    this.rate = price("rate", "samples/s", "The agents' sampling rate (--rate), to turn samples into seconds");
    this.filter = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "search",
        class: "search",
        placeholder: "Filter lines   /",
        "aria-label": "Filter lines",
        oninput: () => {
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.app.navigate({ filter: this.filter.value }, { replace: true }), 150);
        },
      })
    );
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.info = h("div", { class: "cards" });
    this.body = h("div", { class: "table-wrap" });
    this.el.append(
      h("div", { class: "toolbar" }, this.filter, h("span", { class: "spacer" }), this.cpuPrice.el, this.gpuPrice.el, this.rate.el),
      this.info,
      this.body,
    );
    this.token = 0;
    /** @type {any} */
    this.data = null;
    this.loadedKey = "";
  }

  /** @param {State} state */
  async show(state) {
    for (const [k, p] of /** @type {const} */ ([["cpu_price", this.cpuPrice], ["gpu_price", this.gpuPrice], ["rate", this.rate]])) {
      if (document.activeElement !== p.input) p.input.value = state[k];
    }
    if (document.activeElement !== this.filter) this.filter.value = state.filter;
    const params = { ...queryParams(state), limit: 1000, rate: state.rate };
    const key = `${this.app.generation} ${JSON.stringify(params)}`;
    if (key !== this.loadedKey || !this.data) {
      const token = ++this.token;
      this.el.dataset.status = "loading";
      replace(this.body, h("div", { class: "loading" }, "Loading cost per line\u2026"));
      replace(this.info);
      try {
        this.app.caps.require("/api/v1/lines");
        const data = await this.app.cache.get("/api/v1/lines", params);
        if (token !== this.token) return;
        this.data = data;
        this.loadedKey = key;
      } catch (err) {
        if (token !== this.token) return;
        this.data = null;
        this.el.dataset.status = "error";
        replace(this.body, errorBox(err, "loading cost per line"));
        return;
      }
    }
    this._render(state);
  }

  /** @param {State} state */
  _render(state) {
    const data = this.data;
    if (!data.total_samples) {
      this.el.dataset.status = "empty";
      this.app.noData(state).then((none) =>
        replace(this.body, none ? emptyState("Nothing was profiled in this time range", runHint()) : emptyState("No samples match this selector and time range", h("p", null, "Widen the time range or change the selector."))),
      );
      return;
    }
    const cpuPrice = Number(state.cpu_price) || 0;
    const gpuPrice = Number(state.gpu_price) || 0;
    /** @type {Line[]} */
    const all = data.lines;
    const sums = all.reduce(
      (acc, l) => {
        const c = lineCost(l, cpuPrice, gpuPrice);
        acc.cpu += l.cpu_seconds;
        acc.busy += l.gpu_busy_seconds;
        acc.idle += l.gpu_idle_seconds;
        acc.money += c.total;
        acc.idleMoney += c.gpuIdle;
        return acc;
      },
      { cpu: 0, busy: 0, idle: 0, money: 0, idleMoney: 0 },
    );
    const unit = state.kind === "wall" ? "wall-s" : "CPU-s";
    const card = (/** @type {string} */ label, /** @type {string} */ value, /** @type {string} */ note) =>
      h("div", { class: "card" }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, value), h("div", { class: "card-note" }, note));
    replace(
      this.info,
      card(unit, fmtSeconds(sums.cpu), `${fmtMoney((sums.cpu / 3600) * cpuPrice)} at ${fmtMoney(cpuPrice)}/core-h`),
      card("GPU busy", fmtSeconds(sums.busy), "at these lines, per sampled thread"),
      card("GPU idle", fmtSeconds(sums.idle), `${fmtMoney(sums.idleMoney)} of GPU time waiting on these lines`),
      card("Cost", fmtMoney(sums.money), `${fmtCount(all.length)} lines shown`),
    );
    const needle = state.filter.trim().toLowerCase();
    const rows = all.filter((l) => !needle || l.function.toLowerCase().includes(needle) || `${l.file}:${l.line}`.toLowerCase().includes(needle));
    const sort = state.sort && /^-?(where|function|self|total|cpu|busy|idle|cost)$/.test(state.sort) ? state.sort : "cpu";
    sortRows(rows, sort, {
      where: (l) => `${l.file}:${String(l.line).padStart(7, "0")}`,
      function: (l) => l.function,
      self: (l) => l.self,
      total: (l) => l.total,
      cpu: (l) => l.cpu_seconds,
      busy: (l) => l.gpu_busy_seconds,
      idle: (l) => l.gpu_idle_seconds,
      cost: (l) => lineCost(l, cpuPrice, gpuPrice).total,
    });
    const columns = [
      { key: "where", label: "Line" },
      { key: "function", label: "Function" },
      { key: "self", label: "Self", num: true, title: "samples with this line as the leaf" },
      { key: "total", label: "Total", num: true, title: "samples with this line on the stack" },
      { key: "cpu", label: unit, num: true },
      { key: "busy", label: "GPU busy s", num: true, title: "self time at this line while its GPUs were busy" },
      { key: "idle", label: "GPU idle s", num: true, title: "self time at this line while its GPUs were idle" },
      { key: "cost", label: "Cost", num: true, title: "CPU + GPU time at the prices above" },
    ];
    const canSplit = this.app.caps.has("/api/v1/flamegraph", "by");
    const body = h(
      "tbody",
      null,
      rows.slice(0, 500).map((l) => {
        const c = lineCost(l, cpuPrice, gpuPrice);
        const target = withChanges(state, {
          view: "flame",
          focus: l.function,
          focus_file: l.file,
          focus_line: String(l.line),
          by: canSplit ? "line" : state.by,
          search: "",
          zoom: "",
          sort: "",
          filter: "",
        });
        return h(
          "tr",
          null,
          h(
            "td",
            { class: "file" },
            h(
              "a",
              {
                href: `/${formatState(target)}`,
                title: `${l.file}:${l.line} \u2014 show in the flame graph`,
                onclick: (/** @type {MouseEvent} */ e) => {
                  if (e.ctrlKey || e.metaKey || e.shiftKey) return;
                  e.preventDefault();
                  this.app.navigate(target);
                },
              },
              `${shortFile(l.file, 2)}:${l.line}`,
            ),
          ),
          h("td", { class: "fn" }, l.function),
          h("td", { class: "num" }, fmtCount(l.self)),
          h("td", { class: "num" }, fmtCount(l.total)),
          h("td", { class: "num" }, fmtSeconds(l.cpu_seconds)),
          h("td", { class: "num" }, fmtSeconds(l.gpu_busy_seconds)),
          h("td", { class: `num${l.gpu_idle_seconds > 0 ? " worse" : ""}` }, fmtSeconds(l.gpu_idle_seconds)),
          h("td", { class: "num", title: `CPU ${fmtMoney(c.cpu)} + GPU idle ${fmtMoney(c.gpuIdle)} + GPU busy` }, fmtMoney(c.total)),
        );
      }),
    );
    replace(
      this.body,
      h("table", { class: "data" }, sortableHead({ columns, sort, onSort: (s) => this.app.navigate({ sort: s }, { replace: true }) }), body),
    );
    this.el.dataset.status = "ready";
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

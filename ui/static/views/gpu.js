/**
 * The GPU view: per device, utilisation, memory and power/temperature over time; per
 * process, SM utilisation; links to the flame graph of the same range restricted to
 * GPU-idle (or busy) seconds. Reads `GET /api/v1/gpu`.
 * @module views/gpu
 */

import { drawChart } from "../chart.js";
import { h, replace, errorBox, emptyState } from "../dom.js";
import { fmtBytes, fmtShare } from "../format.js";
import { formatState, queryParams, withChanges } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../app.js").App} App
 * @typedef {import("../chart.js").ChartSpec} ChartSpec
 */

/** Distinct line colours for processes. */
const LINE_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

/**
 * Mean of the non-null values, or null.
 * @param {Array<number | null>} values
 */
export function mean(values) {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v !== null && v !== undefined && Number.isFinite(v)) {
      sum += v;
      n += 1;
    }
  }
  return n ? sum / n : null;
}

/**
 * Whether a chart has any non-zero value to show.
 * @param {ChartSpec} spec
 */
export function hasData(spec) {
  return spec.series.some((s) => s.values.some((v) => v !== null && v !== undefined && v !== 0));
}

export class GpuView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-gpu", class: "view", "aria-label": "GPU" });
    this.links = h("div", { class: "toolbar" });
    this.body = h("div", { class: "gpu-body" });
    this.el.append(this.links, this.body);
    this.token = 0;
    /** @type {Array<[HTMLCanvasElement, ChartSpec]>} */
    this.charts = [];
    new ResizeObserver(() => {
      if (!this.el.hidden) for (const [c, spec] of this.charts) drawChart(c, spec);
    }).observe(this.body);
  }

  /** @param {State} state */
  async show(state) {
    this._links(state);
    const token = ++this.token;
    this.el.dataset.status = "loading";
    replace(this.body, h("div", { class: "loading" }, "Loading GPU metrics\u2026"));
    const params = queryParams(state);
    delete params.kind;
    delete params.gpu_state;
    let data;
    try {
      this.app.caps.require("/api/v1/gpu");
      data = await this.app.cache.get("/api/v1/gpu", params);
    } catch (err) {
      if (token !== this.token) return;
      this.el.dataset.status = "error";
      replace(this.body, errorBox(err, "loading GPU metrics"));
      return;
    }
    if (token !== this.token) return;
    this.charts = [];
    if (!data.devices.length && !data.processes.length) {
      this.el.dataset.status = "empty";
      replace(
        this.body,
        emptyState(
          "No GPU metrics for this selector and time range",
          h("p", null, "The agent records GPU utilisation, memory and power through NVML when the job's host has an NVIDIA GPU (", h("code", null, "--gpu auto"), ", the default)."),
          h("p", null, "Metrics recorded elsewhere can be replayed: ", h("code", null, "flamehouse run --gpu replay:gpu.jsonl \u2026")),
        ),
      );
      return;
    }
    const blocks = data.devices.map((/** @type {any} */ d) => this._device(d, data.step));
    if (data.processes.length) blocks.push(this._processes(data.processes, data.step));
    replace(this.body, ...blocks);
    for (const [c, spec] of this.charts) drawChart(c, spec);
    this.el.dataset.status = "ready";
  }

  /** @param {State} state */
  _links(state) {
    const link = (/** @type {string} */ gpu, /** @type {string} */ label, /** @type {string} */ title) => {
      const target = withChanges(state, { view: "flame", gpu_state: gpu, zoom: "", focus: "", search: "" });
      return h(
        "a",
        {
          class: "btn",
          href: `/${formatState(target)}`,
          title,
          onclick: (/** @type {MouseEvent} */ e) => {
            if (e.ctrlKey || e.metaKey || e.shiftKey) return;
            e.preventDefault();
            this.app.navigate(target);
          },
        },
        label,
      );
    };
    replace(
      this.links,
      link("idle", "Flame graph while GPUs idle \u2192", "What the CPU ran while the selected processes' GPUs were idle, same range"),
      link("busy", "Flame graph while GPUs busy \u2192", "What the CPU ran while the GPUs were busy, same range"),
      h("span", { class: "spacer" }),
      h("span", { class: "muted" }, "Drag on the timeline above to narrow the range."),
    );
  }

  /**
   * A chart canvas registered for (re)drawing.
   * @param {ChartSpec} spec
   * @param {string} label
   */
  _chart(spec, label) {
    const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "chart", role: "img", "aria-label": label }));
    this.charts.push([canvas, spec]);
    return canvas;
  }

  /**
   * @param {any} d a device: host, index, uuid, name, series
   * @param {number} step
   */
  _device(d, step) {
    const s = d.series;
    const util = mean(s.sm_util);
    const memTotal = Math.max(0, ...s.mem_total.filter((/** @type {any} */ v) => v !== null));
    const pct = (/** @type {number} */ v) => `${v}%`;
    const title = h(
      "div",
      { class: "device-head" },
      h("h3", null, `GPU ${d.index}`, h("span", { class: "muted" }, ` ${d.name || ""}`)),
      h("span", { class: "muted" }, `${d.host} \u00b7 ${d.uuid}`),
      h("span", { class: "spacer" }),
      h("span", { class: "stat" }, "mean SM ", h("b", null, util === null ? "\u2013" : fmtShare(util / 100))),
      memTotal ? h("span", { class: "stat" }, "memory ", h("b", null, fmtBytes(memTotal))) : null,
    );
    const legend = (/** @type {Array<[string, string]>} */ items) =>
      h("div", { class: "chart-legend" }, items.map(([c, l]) => h("span", null, h("i", { style: `background:${c}` }), l)));
    /** @type {Array<[string, Array<[string, string]>, ChartSpec]>} */
    const panels = [
      [
        "utilisation",
        [["#2563eb", "SM util %"], ["#9333ea", "memory util %"]],
        {
          time: s.time,
          step,
          series: [
            { label: "SM util", values: s.sm_util, colour: "#2563eb" },
            { label: "mem util", values: s.mem_util, colour: "#9333ea" },
          ],
          left: { max: 100, format: pct },
        },
      ],
      [
        "memory",
        [["#0891b2", "memory used"], ["#94a3b8", "total"]],
        {
          time: s.time,
          step,
          series: [
            { label: "used", values: s.mem_used, colour: "#0891b2" },
            { label: "total", values: s.mem_total, colour: "#94a3b8" },
          ],
          left: { format: fmtBytes },
        },
      ],
      [
        "power and temperature",
        [["#ea580c", "power W"], ["#dc2626", "temperature \u00b0C"]],
        {
          time: s.time,
          step,
          series: [
            { label: "power", values: s.power_w, colour: "#ea580c" },
            { label: "temperature", values: s.temperature_c, colour: "#dc2626", axis: "right" },
          ],
          left: { format: (v) => `${v} W` },
          right: { format: (v) => `${v}\u00b0` },
        },
      ],
    ];
    const shown = panels.filter(([, , spec]) => hasData(spec));
    const missing = panels.filter(([, , spec]) => !hasData(spec)).map(([name]) => name);
    return h(
      "div",
      { class: "device", dataset: { uuid: d.uuid } },
      title,
      h(
        "div",
        { class: "device-charts" },
        shown.map(([name, items, spec]) =>
          h(
            "figure",
            null,
            legend(items.filter((_, k) => hasData({ ...spec, series: [spec.series[k]] }))),
            this._chart(spec, `GPU ${d.index} ${name}`),
          ),
        ),
      ),
      missing.length ? h("div", { class: "muted small" }, `Not reported by this GPU source: ${missing.join(", ")}.`) : null,
    );
  }

  /**
   * @param {any[]} processes host, pid, index, series {time, sm_util, mem_used}
   * @param {number} step
   */
  _processes(processes, step) {
    // one shared time axis: union of the processes' bucket times
    const times = [...new Set(processes.flatMap((p) => p.series.time))].sort((a, b) => a - b);
    const at = new Map(times.map((t, k) => [t, k]));
    const series = processes.slice(0, LINE_COLOURS.length).map((p, k) => {
      /** @type {Array<number | null>} */
      const values = new Array(times.length).fill(null);
      p.series.time.forEach((/** @type {number} */ t, /** @type {number} */ j) => {
        values[/** @type {number} */ (at.get(t))] = p.series.sm_util[j];
      });
      return { label: `${p.host} pid ${p.pid} \u00b7 GPU ${p.index}`, values, colour: LINE_COLOURS[k] };
    });
    return h(
      "div",
      { class: "device" },
      h("div", { class: "device-head" }, h("h3", null, "Per-process SM utilisation"), h("span", { class: "muted" }, `${processes.length} process${processes.length === 1 ? "" : "es"}`)),
      h("div", { class: "chart-legend" }, series.map((s) => h("span", null, h("i", { style: `background:${s.colour}` }), s.label))),
      this._chart({ time: times, step, series, left: { max: 100, format: (v) => `${v}%` } }, "per-process GPU utilisation"),
    );
  }
}

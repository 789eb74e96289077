/**
 * The timeline above every view: samples per second (bars) and the selected processes'
 * mean GPU utilisation (line) over the query's range. Dragging across it selects a
 * sub-range, which becomes the query's `from`/`to`. Reads `GET /api/v1/timeline`.
 * @module views/timeline
 */

import { drawChart, extent, timeAt } from "../chart.js";
import { h, replace, errorBox } from "../dom.js";
import { fmtCount, fmtTime } from "../format.js";
import { queryParams } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../app.js").App} App
 * @typedef {import("../chart.js").ChartSpec} ChartSpec
 */

const SAMPLES = "#f97316";
const GPU = "#2563eb";

export class Timeline {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "timeline", class: "timeline", "aria-label": "Timeline" });
    this.readout = h("span", { class: "readout muted" }, "Drag to select a time range");
    this.canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "chart timeline-chart", role: "img", "aria-label": "samples per second and GPU utilisation over time" }));
    this.message = h("div", { class: "timeline-message" });
    this.gpuLegend = h("span", { hidden: true }, h("i", { style: `background:${GPU}` }), "mean GPU util % (selected processes' GPUs)");
    this.el.append(
      h(
        "div",
        { class: "chart-legend" },
        h("span", null, h("i", { style: `background:${SAMPLES}` }), "samples/s"),
        this.gpuLegend,
        h("span", { class: "spacer" }),
        this.readout,
      ),
      this.canvas,
      this.message,
    );
    /** @type {ChartSpec | null} */
    this.spec = null;
    this.token = 0;
    this.loadedKey = "";
    this._bindDrag();
    new ResizeObserver(() => this.spec && drawChart(this.canvas, this.spec)).observe(this.canvas);
  }

  /** @param {State} state */
  async show(state) {
    const params = queryParams(state);
    delete params.gpu_state;
    const key = `${this.app.generation} ${JSON.stringify(params)}`;
    if (key === this.loadedKey && this.spec) return;
    const token = ++this.token;
    this.el.dataset.status = "loading";
    replace(this.message);
    let data;
    try {
      this.app.caps.require("/api/v1/timeline");
      data = await this.app.cache.get("/api/v1/timeline", params);
    } catch (err) {
      if (token !== this.token) return;
      this.spec = null;
      this.canvas.hidden = true;
      this.el.dataset.status = "error";
      replace(this.message, errorBox(err, "loading the timeline"));
      return;
    }
    if (token !== this.token) return;
    this.loadedKey = key;
    this.canvas.hidden = false;
    const perSecond = data.samples.map((/** @type {number} */ n) => n / data.step);
    const hasGpu = data.gpu_util.some((/** @type {number | null} */ v) => v !== null);
    this.gpuLegend.hidden = !hasGpu;
    this.spec = {
      time: data.time,
      step: data.step,
      series: [
        { label: "samples/s", values: perSecond, colour: SAMPLES, style: "bars" },
        ...(hasGpu ? [{ label: "GPU util", values: data.gpu_util, colour: GPU, axis: /** @type {const} */ ("right") }] : []),
      ],
      left: { format: (v) => fmtCount(v) },
      right: { max: 100, format: (v) => `${v}%` },
      span: null,
    };
    drawChart(this.canvas, this.spec);
    const total = data.samples.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0);
    this.el.dataset.status = "ready";
    this.el.dataset.samples = String(total);
    const [t0, t1] = extent(this.spec);
    replace(this.readout, `${fmtTime(t0)} \u2192 ${fmtTime(t1)} \u00b7 ${data.step}s buckets \u00b7 drag to zoom in`);
  }

  _bindDrag() {
    /** @type {number | null} */
    let startX = null;
    const x = (/** @type {MouseEvent} */ e) => e.clientX - this.canvas.getBoundingClientRect().left;
    const width = () => this.canvas.clientWidth;
    this.canvas.addEventListener("mousedown", (e) => {
      if (!this.spec || e.button !== 0) return;
      e.preventDefault();
      startX = x(e);
    });
    window.addEventListener("mousemove", (e) => {
      if (!this.spec) return;
      const spec = this.spec;
      if (startX === null) {
        const r = this.canvas.getBoundingClientRect();
        if (e.clientY < r.top || e.clientY > r.bottom || e.clientX < r.left || e.clientX > r.right) return;
        const t = timeAt(spec, width(), x(e));
        const k = Math.min(spec.time.length - 1, Math.max(0, Math.floor((t - spec.time[0]) / spec.step)));
        const s = spec.series[0].values[k];
        const g = spec.series[1]?.values[k];
        replace(this.readout, `${fmtTime(spec.time[k])} \u00b7 ${fmtCount(s ?? 0)} samples/s${g !== undefined && g !== null ? ` \u00b7 GPU ${g.toFixed(0)}%` : ""}`);
        return;
      }
      spec.span = [timeAt(spec, width(), startX), timeAt(spec, width(), x(e))];
      drawChart(this.canvas, spec);
    });
    window.addEventListener("mouseup", (e) => {
      if (startX === null || !this.spec) return;
      const a = timeAt(this.spec, width(), startX);
      const b = timeAt(this.spec, width(), x(e));
      startX = null;
      this.spec.span = null;
      if (Math.abs(b - a) < Math.max(1, this.spec.step)) {
        drawChart(this.canvas, this.spec);
        return;
      }
      this.app.navigate({ from: String(Math.floor(Math.min(a, b))), to: String(Math.ceil(Math.max(a, b))) });
    });
  }
}

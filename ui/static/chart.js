/**
 * A small canvas time-series chart (bars and lines, a left and a right axis, an optional
 * highlighted time span) for the timeline and GPU views. The axis maths is pure and
 * exported for tests; {@link drawChart} paints.
 * @module chart
 */

import { fmtTime } from "./format.js";

/**
 * @typedef {Object} Series
 * @property {string} label
 * @property {Array<number | null>} values   one per time, null for no data
 * @property {string} colour
 * @property {"bars"|"line"} [style]
 * @property {"left"|"right"} [axis]
 *
 * @typedef {Object} Axis
 * @property {number} [max]                 fixed maximum (default: from the data)
 * @property {(v: number) => string} [format]
 *
 * @typedef {Object} ChartSpec
 * @property {number[]} time    bucket starts, unix seconds
 * @property {number} step      bucket width, seconds
 * @property {Series[]} series
 * @property {Axis} [left]
 * @property {Axis} [right]
 * @property {[number, number] | null} [span] time span to shade (selection)
 */

/** Plot-area margins, CSS pixels. */
export const MARGIN = { left: 52, right: 46, top: 8, bottom: 20 };

/**
 * Up to about `count` round tick values from 0 to at least `max`.
 * @param {number} max
 * @param {number} [count]
 * @returns {number[]}
 */
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/**
 * Round time ticks in [t0, t1] spaced at least `minPx` apart across `width` pixels.
 * @param {number} t0 seconds
 * @param {number} t1 seconds
 * @param {number} width pixels
 * @param {number} [minPx]
 * @returns {number[]}
 */
export function timeTicks(t0, t1, width, minPx = 90) {
  const span = t1 - t0;
  if (!(span > 0) || width <= 0) return [];
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const wanted = (span * minPx) / width;
  const step = steps.find((s) => s >= wanted) ?? Math.ceil(wanted / 86400) * 86400;
  const tz = new Date(t0 * 1000).getTimezoneOffset() * 60;
  const first = Math.ceil((t0 - tz) / step) * step + tz;
  const out = [];
  for (let t = first; t <= t1; t += step) out.push(t);
  return out;
}

/**
 * The time at pixel `x` of a chart `width` wide, clamped to the data's range.
 * @param {ChartSpec} spec
 * @param {number} width CSS pixels
 * @param {number} x CSS pixels from the canvas's left edge
 */
export function timeAt(spec, width, x) {
  const [t0, t1] = extent(spec);
  const plot = width - MARGIN.left - MARGIN.right;
  const frac = Math.min(1, Math.max(0, (x - MARGIN.left) / Math.max(plot, 1)));
  return t0 + frac * (t1 - t0);
}

/**
 * The time range a chart covers: first bucket start to last bucket end.
 * @param {ChartSpec} spec
 * @returns {[number, number]}
 */
export function extent(spec) {
  if (!spec.time.length) return [0, 1];
  return [spec.time[0], spec.time[spec.time.length - 1] + spec.step];
}

/**
 * @param {Series[]} series
 * @param {"left"|"right"} axis
 */
function dataMax(series, axis) {
  let m = 0;
  for (const s of series) {
    if ((s.axis ?? "left") !== axis) continue;
    for (const v of s.values) if (v !== null && v > m) m = v;
  }
  return m;
}

/**
 * Paints a chart into `canvas`, sized to its CSS box.
 * @param {HTMLCanvasElement} canvas
 * @param {ChartSpec} spec
 */
export function drawChart(canvas, spec) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 120;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const [t0, t1] = extent(spec);
  const xOf = (/** @type {number} */ t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW;
  const axes = /** @type {const} */ (["left", "right"]).map((side) => {
    const conf = spec[side] ?? {};
    const used = spec.series.some((s) => (s.axis ?? "left") === side);
    const ticks = niceTicks(conf.max ?? dataMax(spec.series, side));
    return { side, used, conf, ticks, max: ticks[ticks.length - 1] || 1 };
  });
  // grid and axis labels
  ctx.strokeStyle = "#e6e8eb";
  ctx.fillStyle = "#6b7280";
  ctx.lineWidth = 1;
  ctx.textBaseline = "middle";
  const left = axes[0].used ? axes[0] : axes[1];
  for (const v of left.ticks) {
    const y = Math.round(MARGIN.top + plotH - (v / left.max) * plotH) + 0.5;
    ctx.beginPath();
    ctx.moveTo(MARGIN.left, y);
    ctx.lineTo(MARGIN.left + plotW, y);
    ctx.stroke();
  }
  for (const a of axes) {
    if (!a.used) continue;
    ctx.textAlign = a.side === "left" ? "right" : "left";
    const x = a.side === "left" ? MARGIN.left - 6 : MARGIN.left + plotW + 6;
    for (const v of a.ticks) {
      const y = MARGIN.top + plotH - (v / a.max) * plotH;
      ctx.fillText(a.conf.format ? a.conf.format(v) : String(v), x, y);
    }
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of timeTicks(t0, t1, plotW)) {
    ctx.fillText(fmtTime(t, false), xOf(t), MARGIN.top + plotH + 5);
  }
  if (spec.span) {
    const [a, b] = spec.span;
    ctx.fillStyle = "rgba(37, 99, 235, 0.14)";
    ctx.fillRect(xOf(Math.min(a, b)), MARGIN.top, Math.abs(xOf(b) - xOf(a)), plotH);
  }
  for (const s of spec.series) {
    const axis = axes[(s.axis ?? "left") === "left" ? 0 : 1];
    const yOf = (/** @type {number} */ v) => MARGIN.top + plotH - (Math.min(v, axis.max) / axis.max) * plotH;
    if ((s.style ?? "line") === "bars") {
      ctx.fillStyle = s.colour;
      const bw = Math.max(1, (spec.step / (t1 - t0)) * plotW - (plotW / spec.time.length > 3 ? 1 : 0));
      ctx.beginPath();
      spec.time.forEach((t, k) => {
        const v = s.values[k];
        if (v === null || v <= 0) return;
        const y = yOf(v);
        ctx.rect(xOf(t), y, bw, MARGIN.top + plotH - y);
      });
      ctx.fill();
    } else {
      ctx.strokeStyle = s.colour;
      ctx.lineWidth = 1.75;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let drawing = false;
      spec.time.forEach((t, k) => {
        const v = s.values[k];
        if (v === null || v === undefined) {
          drawing = false;
          return;
        }
        const x = xOf(t + spec.step / 2);
        if (drawing) ctx.lineTo(x, yOf(v));
        else ctx.moveTo(x, yOf(v));
        drawing = true;
      });
      ctx.stroke();
    }
  }
  ctx.strokeStyle = "#c9ced6";
  ctx.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, plotW - 1, plotH - 1);
}

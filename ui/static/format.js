/**
 * Number, time and size formatting shared by every view. Pure functions.
 * @module format
 */

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/**
 * A count with thousands separators: `12,345`.
 * @param {number} n
 * @returns {string}
 */
export function fmtCount(n) {
  return INT.format(Math.round(n));
}

/**
 * A ratio as a percentage with sensible precision: `42.1%`, `0.31%`, `<0.01%`.
 * @param {number} part
 * @param {number} whole
 * @returns {string}
 */
export function fmtPct(part, whole) {
  if (!whole) return "0%";
  return fmtShare(part / whole);
}

/**
 * A share in [0, 1] as a percentage.
 * @param {number} share
 * @returns {string}
 */
export function fmtShare(share) {
  const p = share * 100;
  if (p === 0) return "0%";
  if (Math.abs(p) < 0.01) return p > 0 ? "<0.01%" : ">-0.01%";
  if (Math.abs(p) < 1) return `${p.toFixed(2)}%`;
  if (Math.abs(p) >= 99.95 && Math.abs(p) < 100) return `${p.toFixed(2)}%`;
  return `${p.toFixed(1)}%`;
}

/**
 * A signed change of share in percentage points: `+3.2 pp`, `−0.41 pp`.
 * @param {number} delta share difference in [-1, 1]
 * @returns {string}
 */
export function fmtDeltaPP(delta) {
  const p = delta * 100;
  const digits = Math.abs(p) < 1 ? 2 : 1;
  const sign = p > 0 ? "+" : p < 0 ? "\u2212" : "\u00b1";
  return `${sign}${Math.abs(p).toFixed(digits)} pp`;
}

/**
 * Seconds, compact: `0.42 s`, `12.3 s`, `4m 05s`, `2h 03m`.
 * @param {number} s
 * @returns {string}
 */
export function fmtSeconds(s) {
  if (!Number.isFinite(s)) return "\u2013";
  const a = Math.abs(s);
  if (a < 10) return `${s.toFixed(2)} s`;
  if (a < 100) return `${s.toFixed(1)} s`;
  if (a < 3600) {
    const m = Math.floor(a / 60);
    return `${s < 0 ? "-" : ""}${m}m ${String(Math.round(a - m * 60)).padStart(2, "0")}s`;
  }
  const h = Math.floor(a / 3600);
  return `${s < 0 ? "-" : ""}${h}h ${String(Math.round((a - h * 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Bytes in binary units: `1.5 GiB`.
 * @param {number} b
 * @returns {string}
 */
export function fmtBytes(b) {
  if (!Number.isFinite(b)) return "\u2013";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = b;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v < 10 && u > 0 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/**
 * Money with two significant decimals below a cent: `$1.23`, `$0.0042`.
 * @param {number} amount
 * @returns {string}
 */
export function fmtMoney(amount) {
  if (!Number.isFinite(amount)) return "\u2013";
  if (amount === 0) return "$0";
  if (Math.abs(amount) < 0.01) return `$${amount.toPrecision(2)}`;
  return `$${amount.toFixed(2)}`;
}

/**
 * A unix time as local `YYYY-MM-DD HH:MM:SS`.
 * @param {number} t seconds
 * @param {boolean} [withDate]
 * @returns {string}
 */
export function fmtTime(t, withDate = true) {
  const d = new Date(t * 1000);
  const p = (/** @type {number} */ n) => String(n).padStart(2, "0");
  const time = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return withDate ? `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}` : time;
}

/**
 * The last `n` path components of a file name: `torch/nn/linear.py`.
 * @param {string} file
 * @param {number} [n]
 * @returns {string}
 */
export function shortFile(file, n = 2) {
  if (!file) return "";
  const parts = file.split("/");
  return parts.length <= n ? file : `\u2026/${parts.slice(-n).join("/")}`;
}

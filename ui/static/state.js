/**
 * The page's state, kept entirely in the URL's query string so a link reproduces a view.
 *
 * Parameter names follow the API (`selector`, `from`, `to`, `kind`, `gpu_state`, the
 * diff's `base…`/`comparison…`), so `/?selector={service="trainer"}&from=now-1h` opens that
 * job's flame graph. Defaults are left out of the URL. Pure functions only.
 * @module state
 */

/** @typedef {"flame"|"top"|"sandwich"|"diff"|"lines"|"gpu"} View */

/**
 * @typedef {Object} State
 * @property {View} view
 * @property {string} selector  label selector, API syntax
 * @property {string} from      range start, API syntax (`now-1h`, unix seconds, RFC 3339)
 * @property {string} to        range end, empty for now
 * @property {string} kind      `cpu` or `wall`
 * @property {string} gpu_state `any`, `busy`, `idle` (or `none`)
 * @property {string} search    flame graph search text (`/re/` for a regular expression)
 * @property {string} focus     function highlighted (and zoomed when unique) in the flame graph
 * @property {string} focus_file file of the focused function (empty: any)
 * @property {string} focus_line line of the focused frame (empty: any)
 * @property {string} zoom      zoomed frame as an escaped path of frame keys from the root
 * @property {string} orient    `icicle` (root on top) or `flame` (root at the bottom)
 * @property {string} by        `function` or `line` (split frames by line)
 * @property {string} fn        sandwich view's function
 * @property {string} fn_file   sandwich view's function's file (empty: any)
 * @property {string} sort      top/lines table sort column, `-` prefix for ascending
 * @property {string} filter    top/lines table filter text
 * @property {string} base      diff: base selector (empty: `selector`)
 * @property {string} base_from diff: base range start
 * @property {string} base_to   diff: base range end
 * @property {string} comparison      diff: comparison selector (empty: `selector`)
 * @property {string} comparison_from diff: comparison range start (empty: `from`)
 * @property {string} comparison_to   diff: comparison range end (empty: `to`)
 * @property {string} rate      samples per second per thread the agents used
 * @property {string} cpu_price price of one CPU core-hour, for the lines view
 * @property {string} gpu_price price of one GPU-hour, for the lines view
 * @property {string} max_nodes most flame graph nodes to ask for
 */

export const VIEWS = /** @type {const} */ (["flame", "top", "sandwich", "lines", "gpu", "diff"]);

/** @type {State} */
export const DEFAULTS = Object.freeze({
  view: "flame",
  selector: "",
  from: "now-1h",
  to: "",
  kind: "cpu",
  gpu_state: "any",
  search: "",
  focus: "",
  focus_file: "",
  focus_line: "",
  zoom: "",
  orient: "icicle",
  by: "function",
  fn: "",
  fn_file: "",
  sort: "",
  filter: "",
  base: "",
  base_from: "now-2h",
  base_to: "now-1h",
  comparison: "",
  comparison_from: "",
  comparison_to: "",
  rate: "99",
  cpu_price: "0.05",
  gpu_price: "2.50",
  max_nodes: "20000",
});

/** Order of parameters in a written URL: the query first, then the view's own. */
const ORDER = Object.keys(DEFAULTS);

/**
 * Reads a state from a query string (`location.search`); unknown keys are ignored and
 * invalid enumerations fall back to their defaults.
 * @param {string} search
 * @returns {State}
 */
export function parseState(search) {
  const params = new URLSearchParams(search);
  /** @type {Record<string, string>} */
  const out = { ...DEFAULTS };
  for (const key of ORDER) {
    const value = params.get(key);
    if (value !== null) out[key] = value;
  }
  const s = /** @type {State} */ (/** @type {unknown} */ (out));
  if (!VIEWS.includes(s.view)) s.view = "flame";
  if (!["cpu", "wall"].includes(s.kind)) s.kind = DEFAULTS.kind;
  if (!["any", "busy", "idle", "none"].includes(s.gpu_state)) s.gpu_state = DEFAULTS.gpu_state;
  if (!["icicle", "flame"].includes(s.orient)) s.orient = DEFAULTS.orient;
  if (!["function", "line"].includes(s.by)) s.by = DEFAULTS.by;
  return s;
}

/**
 * Percent-encodes a parameter value but keeps the characters selectors are made of
 * readable (`{}"=~!,:/`), so a URL such as `?selector={service="trainer"}` stays legible.
 * @param {string} value
 * @returns {string}
 */
export function encodeValue(value) {
  return encodeURIComponent(value).replace(/%(7B|7D|22|3D|2C|3A|7E|21|2F|40|24|3B|5B|5D|7C)/g, (m) =>
    decodeURIComponent(m),
  );
}

/**
 * Writes a state as a query string (with `?`, or empty), leaving defaults out.
 * @param {State} state
 * @returns {string}
 */
export function formatState(state) {
  const parts = [];
  const record = /** @type {Record<string, string>} */ (/** @type {unknown} */ (state));
  const defaults = /** @type {Record<string, string>} */ (/** @type {unknown} */ (DEFAULTS));
  for (const key of ORDER) {
    const value = record[key];
    if (value === undefined || value === null || value === defaults[key]) continue;
    parts.push(`${key}=${encodeValue(String(value))}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

/**
 * A copy of `state` with `changes` applied. Changing the query (selector, range, kind,
 * GPU state, split) drops the zoom, which names frames of the old profile.
 * @param {State} state
 * @param {Partial<State>} changes
 * @returns {State}
 */
export function withChanges(state, changes) {
  const next = { ...state, ...changes };
  const queryKeys = ["selector", "from", "to", "kind", "gpu_state", "by"];
  const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (changes));
  if (queryKeys.some((k) => k in record && record[k] !== /** @type {any} */ (state)[k]) && !("zoom" in record)) {
    next.zoom = "";
  }
  return next;
}

/**
 * The API's query parameters for the profile a state selects.
 * @param {State} state
 * @returns {Record<string, string>}
 */
export function queryParams(state) {
  /** @type {Record<string, string>} */
  const p = { selector: state.selector, from: state.from, kind: state.kind };
  if (state.to) p.to = state.to;
  if (state.gpu_state !== "any") p.gpu_state = state.gpu_state;
  return p;
}

/**
 * The diff request's parameters, defaulting each side to the main query.
 * @param {State} state
 * @returns {Record<string, string>}
 */
export function diffParams(state) {
  /** @type {Record<string, string>} */
  const p = {
    base: state.base || state.selector,
    base_from: state.base_from,
    comparison: state.comparison || state.selector,
    comparison_from: state.comparison_from || state.from,
    kind: state.kind,
  };
  if (state.base_to) p.base_to = state.base_to;
  const compTo = state.comparison_to || state.to;
  if (compTo) p.comparison_to = compTo;
  return p;
}

/**
 * Joins frame keys into a `zoom` path; `;` and `\` inside a key are escaped.
 * @param {string[]} keys
 * @returns {string}
 */
export function encodePath(keys) {
  return keys.map((k) => k.replace(/\\/g, "\\\\").replace(/;/g, "\\;")).join(";");
}

/**
 * Splits a `zoom` path into frame keys (inverse of {@link encodePath}).
 * @param {string} path
 * @returns {string[]}
 */
export function decodePath(path) {
  if (!path) return [];
  const out = [];
  let cur = "";
  for (let i = 0; i < path.length; i += 1) {
    const c = path[i];
    if (c === "\\" && i + 1 < path.length) {
      cur += path[i + 1];
      i += 1;
    } else if (c === ";") {
      out.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

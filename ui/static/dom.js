/**
 * Tiny DOM helpers: element construction, in-page error and empty states, and the
 * shared tooltip. No framework.
 * @module dom
 */

/**
 * Creates an element. `attrs` keys starting with `on` add listeners, `class` sets the
 * class, `dataset` fills data attributes, others are attributes (`false`/null skipped).
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false | Array<Node | string>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") /** @type {HTMLInputElement} */ (el).value = v;
    else if (k === "checked") /** @type {HTMLInputElement} */ (el).checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {Array<any>} children
 */
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * Replaces an element's children.
 * @param {HTMLElement} el
 * @param {...any} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * An in-page error panel for a failed API call or view.
 * @param {unknown} err
 * @param {string} [what] what was being done, e.g. "loading the flame graph"
 * @returns {HTMLElement}
 */
export function errorBox(err, what) {
  const e = /** @type {{status?: number, message?: string, path?: string}} */ (err ?? {});
  const status =
    e.status === -1
      ? `${e.path ?? "endpoint"} is not in this server's API`
      : e.status
        ? `HTTP ${e.status}${e.path ? ` from ${e.path}` : ""}`
        : e.status === 0
          ? "no response from the server"
          : "error";
  return h(
    "div",
    { class: "notice error", role: "alert" },
    h("strong", null, what ? `Failed ${what}` : "Request failed"),
    h("span", { class: "muted" }, ` \u2014 ${status}`),
    h("div", { class: "error-message" }, e.message ?? String(err)),
  );
}

/**
 * An empty state saying what to do next.
 * @param {string} title
 * @param {...any} body
 * @returns {HTMLElement}
 */
export function emptyState(title, ...body) {
  return h("div", { class: "empty" }, h("h3", null, title), ...body);
}

/** The `flamehouse run` command to suggest when there is no data. */
export function runHint() {
  const grpc = `${location.hostname || "127.0.0.1"}:7070`;
  return h(
    "div",
    { class: "hint" },
    h("p", null, "Widen the time range, or start profiling a job and its whole process tree:"),
    h("pre", { class: "cmd" }, `flamehouse run --collector ${grpc} --service trainer -- python train.py`),
    h(
      "p",
      { class: "muted" },
      "or attach to running processes with ",
      h("code", null, `flamehouse agent --collector ${grpc} --match 'train\\.py'`),
      ". The port is the server's --grpc-listen.",
    ),
  );
}

/** The page's single floating tooltip. */
export const tooltip = {
  /** @type {HTMLElement | null} */
  el: null,
  /**
   * Shows `content` near the pointer.
   * @param {MouseEvent} event
   * @param {Array<Node | string>} content
   */
  show(event, content) {
    if (!this.el) {
      this.el = h("div", { class: "tooltip", role: "tooltip" });
      document.body.append(this.el);
    }
    const el = this.el;
    el.replaceChildren(...content);
    el.hidden = false;
    const pad = 14;
    const w = el.offsetWidth;
    const hgt = el.offsetHeight;
    let x = event.clientX + pad;
    let y = event.clientY + pad;
    if (x + w > window.innerWidth - 4) x = Math.max(4, event.clientX - w - pad);
    if (y + hgt > window.innerHeight - 4) y = Math.max(4, event.clientY - hgt - pad);
    el.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
  },
  hide() {
    if (this.el) this.el.hidden = true;
  },
};

/**
 * A sortable table header. A sort is a column key (the column's natural order: numbers
 * largest first, text A to Z) or `-key` (reversed); clicking a header toggles between them.
 * @param {Object} spec
 * @param {Array<{key: string, label: string, num?: boolean, title?: string}>} spec.columns
 * @param {string} spec.sort
 * @param {(sort: string) => void} spec.onSort
 * @returns {HTMLElement} the `<thead>`
 */
export function sortableHead({ columns, sort, onSort }) {
  const reversed = sort.startsWith("-");
  const key = sort.replace(/^-/, "");
  return h(
    "thead",
    null,
    h(
      "tr",
      null,
      columns.map((c) => {
        const active = c.key === key;
        const descending = Boolean(c.num) !== reversed;
        return h(
          "th",
          {
            class: c.num ? "num" : null,
            title: c.title ?? null,
            "aria-sort": active ? (descending ? "descending" : "ascending") : "none",
          },
          h(
            "button",
            { type: "button", class: "sort", onclick: () => onSort(active && !reversed ? `-${c.key}` : c.key) },
            c.label,
            h("span", { class: "sort-mark" }, active ? (descending ? "\u25BE" : "\u25B4") : ""),
          ),
        );
      }),
    ),
  );
}

/**
 * Sorts rows in place by a sort spec (see {@link sortableHead}).
 * @template T
 * @param {T[]} rows
 * @param {string} sort
 * @param {Record<string, (row: T) => number | string>} keys accessor per column key
 * @returns {T[]}
 */
export function sortRows(rows, sort, keys) {
  const reversed = sort.startsWith("-");
  const get = keys[sort.replace(/^-/, "")];
  if (!get) return rows;
  rows.sort((a, b) => {
    const x = get(a);
    const y = get(b);
    let c;
    if (typeof x === "number" && typeof y === "number") c = y - x;
    else c = String(x).localeCompare(String(y));
    return reversed ? -c : c;
  });
  return rows;
}

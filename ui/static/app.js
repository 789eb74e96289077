/**
 * The page: reads the state from the URL, routes between views, keeps the URL in step
 * with every change (so a link reproduces a view) and owns what views share — the API
 * result cache, the server's capabilities and the current profile.
 *
 * Views (`views/*.js`) each own a `<section>` and implement `show(state)` (and optionally
 * `hide()` and `onKey(event)`); they change the state only through {@link App#navigate}.
 * @module app
 */

import { apiUrl, getCapabilities, getJson, ResultCache } from "./api.js";
import { h, replace, errorBox } from "./dom.js";
import { flattenTree } from "./flame-model.js";
import { formatState, parseState, queryParams, withChanges } from "./state.js";
import { DiffView } from "./views/diff.js";
import { FlameView } from "./views/flame.js";
import { GpuView } from "./views/gpu.js";
import { LinesView } from "./views/lines.js";
import { QueryBar } from "./views/querybar.js";
import { SandwichView } from "./views/sandwich.js";
import { Timeline } from "./views/timeline.js";
import { TopView } from "./views/top.js";

/**
 * @typedef {import("./state.js").State} State
 * @typedef {import("./state.js").View} ViewName
 * @typedef {import("./api.js").Capabilities} Capabilities
 * @typedef {{key: string, data: any, flame: import("./flame-model.js").Flame | null}} Profile
 * @typedef {{el: HTMLElement, show: (s: State) => Promise<void> | void, hide?: () => void,
 *   onKey?: (e: KeyboardEvent) => boolean}} ViewLike
 */

/** @type {Array<[ViewName, string, string]>} view, tab label, title */
const TABS = [
  ["flame", "Flame graph", "Call tree of the selected samples"],
  ["top", "Top", "Functions by self and total time"],
  ["sandwich", "Sandwich", "Callers and callees of one function"],
  ["lines", "Lines", "Cost per source line, CPU and GPU"],
  ["gpu", "GPU", "Per-device and per-process GPU metrics"],
  ["diff", "Diff", "Compare two selectors or time ranges"],
];

const EXPORTS = [
  ["speedscope", "speedscope", "JSON for speedscope.app"],
  ["pprof", "pprof", "gzipped protobuf for go tool pprof"],
  ["folded", "folded", "folded stacks for flamegraph.pl / inferno"],
];

export class App {
  /** @param {HTMLElement} root the page's `#app` element */
  constructor(root) {
    this.root = root;
    /** @type {State} */
    this.state = parseState(location.search);
    this.cache = new ResultCache();
    /** @type {Capabilities} */
    this.caps = /** @type {any} */ (null);
    /** @type {{key: string, promise: Promise<Profile>} | null} */
    this._profile = null;
    /** @type {{key: string, promise: Promise<boolean>} | null} */
    this._noData = null;
    /** Bumped by a refresh; part of every view's "already loaded" key. */
    this.generation = 0;
    this.tabs = h("div", { class: "tabs", role: "tablist" });
    this.exports = h("div", { class: "exports", "aria-label": "Export" });
  }

  /** Reads the server's capabilities, builds the page and shows the URL's view. */
  async start() {
    this.caps = await getCapabilities();
    this.querybar = new QueryBar(this);
    this.timeline = new Timeline(this);
    /** @type {Record<ViewName, ViewLike>} */
    this.views = {
      flame: new FlameView(this),
      top: new TopView(this),
      sandwich: new SandwichView(this),
      lines: new LinesView(this),
      gpu: new GpuView(this),
      diff: new DiffView(this),
    };
    const header = h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "/", title: "flamehouse \u2014 reset to the default view" }, h("span", { class: "logo", "aria-hidden": "true" }), "flamehouse"),
      this.querybar.el,
    );
    const main = h("main", { class: "views" }, Object.values(this.views).map((v) => v.el));
    replace(this.root, header, h("nav", { class: "tabbar" }, this.tabs, this.exports), this.timeline.el, main);
    window.addEventListener("popstate", () => {
      this.state = parseState(location.search);
      this.render();
    });
    document.addEventListener("keydown", (e) => this._onKey(e));
    this.render();
  }

  /**
   * Applies `changes` to the state, writes the URL and shows the result.
   * @param {Partial<State>} changes
   * @param {{replace?: boolean, refresh?: boolean}} [options] `replace` the history entry
   *   instead of adding one; `refresh` drops cached results (re-query)
   */
  navigate(changes, options = {}) {
    const next = withChanges(this.state, changes);
    if (options.refresh) {
      this.generation += 1;
      this.cache.clear();
      this._profile = null;
      this._noData = null;
    }
    const url = `${location.pathname}${formatState(next)}`;
    if (url !== `${location.pathname}${location.search}`) {
      if (options.replace) history.replaceState(null, "", url);
      else history.pushState(null, "", url);
    }
    this.state = next;
    this.render();
  }

  /** Shows the current state: query bar, tabs, exports, timeline and the active view. */
  render() {
    const s = this.state;
    const label = TABS.find(([v]) => v === s.view)?.[1] ?? "";
    document.title = `${label} ${s.selector || "{}"} \u00b7 flamehouse`;
    /** @type {QueryBar} */ (this.querybar).update(s);
    this._renderTabs();
    this._renderExports();
    const timeline = /** @type {Timeline} */ (this.timeline);
    timeline.el.hidden = s.view === "diff";
    if (!timeline.el.hidden) this._run(timeline, s);
    for (const [name, view] of Object.entries(/** @type {Record<string, ViewLike>} */ (this.views))) {
      const active = name === s.view;
      if (!active && !view.el.hidden && view.hide) view.hide();
      view.el.hidden = !active;
    }
    this._run(/** @type {Record<string, ViewLike>} */ (this.views)[s.view], s);
  }

  /**
   * Runs a view's `show`, turning an unexpected failure into an in-page error.
   * @param {ViewLike} view
   * @param {State} state
   */
  _run(view, state) {
    Promise.resolve()
      .then(() => view.show(state))
      .catch((err) => {
        view.el.dataset.status = "error";
        view.el.append(errorBox(err, "showing this view"));
      });
  }

  _renderTabs() {
    replace(
      this.tabs,
      ...TABS.map(([view, label, title]) => {
        const href = `/${formatState(withChanges(this.state, { view }))}`;
        return h(
          "a",
          {
            role: "tab",
            class: `tab${this.state.view === view ? " active" : ""}`,
            "aria-selected": String(this.state.view === view),
            href,
            title,
            dataset: { view },
            onclick: (/** @type {MouseEvent} */ e) => {
              if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
              e.preventDefault();
              this.navigate({ view });
            },
          },
          label,
        );
      }),
    );
  }

  _renderExports() {
    const has = this.caps.has("/api/v1/export");
    const params = queryParams(this.state);
    replace(
      this.exports,
      h("span", { class: "muted" }, "Export"),
      ...EXPORTS.map(([format, label, title]) =>
        has
          ? h("a", { class: "btn small", href: apiUrl("/api/v1/export", { format, ...params }), download: "", title: `Download the current profile as ${title}` }, label)
          : h("button", { type: "button", class: "btn small", disabled: true, title: "This server's API has no /api/v1/export yet" }, label),
      ),
    );
  }

  /**
   * The flame graph request for a state, as a cache key.
   * @param {State} state
   */
  profileKey(state) {
    return `${this.generation} ${apiUrl("/api/v1/flamegraph", this._profileParams(state))}`;
  }

  /** @param {State} state */
  _profileParams(state) {
    /** @type {Record<string, string>} */
    const params = { ...queryParams(state), max_nodes: state.max_nodes };
    if (state.by === "line") params.by = "line";
    return params;
  }

  /**
   * The state's flame graph, fetched and flattened once for every view that needs it.
   * @param {State} state
   * @returns {Promise<Profile>}
   */
  profile(state) {
    const key = this.profileKey(state);
    if (this._profile && this._profile.key === key) return this._profile.promise;
    const promise = this.cache.get("/api/v1/flamegraph", this._profileParams(state)).then((data) => ({
      key,
      data,
      flame: data.total_samples ? flattenTree(data.root) : null,
    }));
    this._profile = { key, promise };
    promise.catch(() => {
      if (this._profile && this._profile.key === key) this._profile = null;
    });
    return promise;
  }

  /**
   * Whether nothing at all was profiled in the state's time range (no label has a value),
   * as opposed to a selector that matches nothing. Chooses the empty state's advice.
   * @param {State} state
   * @returns {Promise<boolean>}
   */
  noData(state) {
    const key = `${this.generation} ${state.from} ${state.to}`;
    if (!this._noData || this._noData.key !== key) {
      const promise = getJson("/api/v1/labels", { from: state.from, to: state.to }).then(
        (b) => !b.labels || b.labels.length === 0,
        () => false,
      );
      this._noData = { key, promise };
    }
    return this._noData.promise;
  }

  /** @param {KeyboardEvent} e */
  _onKey(e) {
    const target = /** @type {HTMLElement} */ (e.target);
    const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const view = /** @type {Record<string, ViewLike>} */ (this.views)[this.state.view];
    if (view.onKey && view.onKey(e)) return;
    if (e.key === "s") {
      e.preventDefault();
      /** @type {QueryBar} */ (this.querybar).focus();
    }
  }
}

const root = document.getElementById("app");
if (root) {
  const app = new App(root);
  /** Debugging and test hook. */
  Object.assign(window, { flamehouse: app });
  app.start().catch((err) => {
    replace(root, errorBox(err, "starting the page"));
  });
}

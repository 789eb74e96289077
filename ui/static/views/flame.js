/**
 * The flame graph view: toolbar (search, orientation, split by line, reset), breadcrumbs,
 * the canvas graph and its tooltip. Zoom, search, focus, orientation and split live in
 * the URL; changing only those never re-queries.
 * @module views/flame
 */

import { h, replace, errorBox, emptyState, runHint, tooltip } from "../dom.js";
import { describeFrame } from "./frame-tooltip.js";
import { FlameGraph } from "../flame.js";
import {
  ancestry,
  findPath,
  makeMatcher,
  markMatches,
  matchedValue,
  nameOf,
  pathOf,
} from "../flame-model.js";
import { fmtCount, fmtPct, fmtSeconds, shortFile } from "../format.js";
import { decodePath, encodePath } from "../state.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../flame-model.js").Flame} Flame
 * @typedef {import("../app.js").App} App
 */

export class FlameView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.el = h("section", { id: "view-flame", class: "view", "aria-label": "Flame graph" });
    this.search = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "search",
        class: "search",
        placeholder: "Search functions   /",
        "aria-label": "Search functions (press / to focus)",
        spellcheck: "false",
        oninput: () => this._onSearchInput(),
        onkeydown: (/** @type {KeyboardEvent} */ e) => {
          if (e.key === "Escape") {
            this.search.blur();
            this.app.navigate({ search: "", focus: "", focus_file: "", focus_line: "", zoom: "" }, { replace: true });
          }
        },
      })
    );
    this.matchInfo = h("span", { class: "match-info", "aria-live": "polite" });
    this.orientButtons = h("div", { class: "seg", role: "group", "aria-label": "Orientation" });
    this.splitToggle = /** @type {HTMLInputElement} */ (
      h("input", {
        type: "checkbox",
        onchange: () => this.app.navigate({ by: this.splitToggle.checked ? "line" : "function" }),
      })
    );
    this.splitLabel = h("label", { class: "toggle" }, this.splitToggle, " split by line");
    this.summary = h("span", { class: "summary" });
    this.focusBar = h("div", { class: "focus-bar", hidden: true });
    this.crumbs = h("nav", { class: "crumbs", "aria-label": "Zoom path" });
    this.notices = h("div", { class: "notices" });
    this.body = h("div", { class: "flame-body" });
    const toolbar = h(
      "div",
      { class: "toolbar" },
      this.search,
      this.matchInfo,
      h("span", { class: "spacer" }),
      this.orientButtons,
      this.splitLabel,
      h(
        "button",
        { type: "button", class: "btn", title: "Reset zoom, search and focus (Esc)", onclick: () => this.reset() },
        "Reset",
      ),
    );
    this.el.append(toolbar, h("div", { class: "subbar" }, this.crumbs, this.summary), this.focusBar, this.notices);
    this.host = h("div", { class: "flame-graph" });
    this.el.append(this.host, this.body);
    this.graph = new FlameGraph(this.host, {
      onClick: (i) => this._zoomTo(i),
      onHover: (i, e) => this._hover(i, e),
    });
    /** @type {Flame | null} */
    this.flame = null;
    this.loadedKey = "";
    this.token = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._searchTimer = undefined;
    new ResizeObserver(() => {
      if (this.flame && !this.el.hidden) this.graph.draw();
    }).observe(this.host);
  }

  /** @param {State} state */
  async show(state) {
    this._renderToolbar(state);
    const key = this.app.profileKey(state);
    if (key === this.loadedKey && this.flame) {
      this._applyViewState(state);
      return;
    }
    const token = ++this.token;
    this.el.dataset.status = "loading";
    this.host.hidden = true;
    replace(this.body, h("div", { class: "loading" }, "Loading flame graph\u2026"));
    replace(this.notices);
    try {
      const profile = await this.app.profile(state);
      if (token !== this.token) return;
      this.loadedKey = key;
      this._setData(profile, state);
    } catch (err) {
      if (token !== this.token) return;
      this.flame = null;
      this.loadedKey = "";
      this.el.dataset.status = "error";
      replace(this.body, errorBox(err, "loading the flame graph"));
    }
  }

  hide() {
    tooltip.hide();
  }

  /**
   * @param {import("../app.js").Profile} profile
   * @param {State} state
   */
  _setData(profile, state) {
    const data = profile.data;
    replace(this.body);
    if (!data.total_samples) {
      this.flame = null;
      this.el.dataset.status = "empty";
      this.host.hidden = true;
      replace(this.summary);
      this.app.noData(state).then((none) => {
        replace(
          this.body,
          none
            ? emptyState("Nothing was profiled in this time range", runHint())
            : emptyState(
                "No samples match this selector and time range",
                h("p", null, "Widen the time range, pick another kind (cpu counts running threads only), or check the selector's labels with the autocomplete."),
                state.gpu_state !== "any" ? h("p", null, `Only samples taken while the GPU was ${state.gpu_state} are shown: set GPU to any.`) : null,
              ),
        );
      });
      return;
    }
    this.flame = /** @type {Flame} */ (profile.flame);
    this.graph.setData(this.flame);
    this.host.hidden = false;
    if (data.truncated) {
      replace(
        this.notices,
        h(
          "div",
          { class: "notice" },
          `Showing the ${fmtCount(this.flame.count - 1)} largest call paths (max_nodes=${state.max_nodes}); smaller ones are folded into their callers' self.`,
        ),
      );
    }
    this._applyViewState(state);
  }

  /**
   * Applies zoom, search/focus highlight and orientation to the loaded profile and draws.
   * @param {State} state
   */
  _applyViewState(state) {
    const f = this.flame;
    if (!f) return;
    this.graph.setOrient(/** @type {"icicle"|"flame"} */ (state.orient));
    let zoom = findPath(f, decodePath(state.zoom));
    const marks = this._marks(state);
    this.graph.setHighlight(marks);
    if (marks && state.focus && !state.zoom) {
      // a focused function with a single occurrence: zoom to it
      const m = matchedValue(f, marks);
      if (m.nodes === 1) zoom = marks.indexOf(1);
    }
    this.graph.setZoom(zoom);
    const unit = state.kind === "wall" ? "wall-s" : "CPU-s";
    const rate = Number(state.rate) || 99;
    replace(
      this.summary,
      `${fmtCount(f.total[0])} samples \u00b7 ${fmtSeconds(f.total[0] / rate)} ${unit} \u00b7 ${fmtCount(f.count)} nodes`,
    );
    this._renderMatchInfo(state, marks);
    this._renderFocus(state, marks);
    this._renderCrumbs(zoom);
    this.graph.draw();
    this.el.dataset.status = "ready";
  }

  /**
   * The highlight marks for a state's search or focus, or null.
   * @param {State} state
   * @returns {Uint8Array | null}
   */
  _marks(state) {
    const f = /** @type {Flame} */ (this.flame);
    if (state.focus) {
      const line = Number(state.focus_line) || 0;
      return markMatches(
        f,
        (name, file, l) =>
          name === state.focus && (!state.focus_file || file === state.focus_file) && (!line || !l || l === line),
      );
    }
    const match = makeMatcher(state.search);
    return match ? markMatches(f, (name) => match(name)) : null;
  }

  /**
   * @param {State} state
   * @param {Uint8Array | null} marks
   */
  _renderMatchInfo(state, marks) {
    const f = /** @type {Flame} */ (this.flame);
    if (!marks || !state.search || state.focus) {
      replace(this.matchInfo);
      return;
    }
    const m = matchedValue(f, marks);
    this.matchInfo.dataset.share = String(m.value / (f.total[0] || 1));
    replace(
      this.matchInfo,
      m.nodes
        ? h("span", null, h("b", null, fmtPct(m.value, f.total[0])), ` of samples in ${fmtCount(m.nodes)} frames`)
        : h("span", { class: "muted" }, "no match"),
    );
  }

  /**
   * @param {State} state
   * @param {Uint8Array | null} marks
   */
  _renderFocus(state, marks) {
    const f = /** @type {Flame} */ (this.flame);
    if (!state.focus || !marks) {
      this.focusBar.hidden = true;
      return;
    }
    const m = matchedValue(f, marks);
    this.focusBar.hidden = false;
    replace(
      this.focusBar,
      h("span", { class: "focus-label" }, "Focused"),
      h("code", null, state.focus),
      state.focus_file ? h("span", { class: "muted" }, ` ${shortFile(state.focus_file, 3)}${state.focus_line ? `:${state.focus_line}` : ""}`) : null,
      h(
        "span",
        { class: "focus-share" },
        m.nodes ? ` \u2014 ${fmtPct(m.value, f.total[0])} of samples, ${fmtCount(m.nodes)} frame${m.nodes === 1 ? "" : "s"}` : " \u2014 not in this profile",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn small",
          onclick: () => this.app.navigate({ view: "sandwich", fn: state.focus, fn_file: state.focus_file }),
        },
        "Sandwich",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn small",
          onclick: () => this.app.navigate({ focus: "", focus_file: "", focus_line: "" }),
        },
        "Clear",
      ),
    );
  }

  /** @param {number} zoom */
  _renderCrumbs(zoom) {
    const f = /** @type {Flame} */ (this.flame);
    if (zoom <= 0) {
      replace(this.crumbs, h("span", { class: "crumb-hint" }, "Click a frame to zoom in; Esc resets."));
      return;
    }
    const chain = ancestry(f, zoom);
    /** @type {HTMLElement[]} */
    const items = [];
    chain.forEach((i, k) => {
      if (k > 0) items.push(h("span", { class: "crumb-sep", "aria-hidden": "true" }, "\u203a"));
      const label = i === 0 ? "all" : nameOf(f, i);
      items.push(
        k === chain.length - 1
          ? h("span", { class: "crumb current", "aria-current": "true" }, label)
          : h("button", { type: "button", class: "crumb", onclick: () => this._zoomTo(i) }, label),
      );
    });
    replace(this.crumbs, ...items);
  }

  /** @param {State} state */
  _renderToolbar(state) {
    if (document.activeElement !== this.search) this.search.value = state.search;
    replace(
      this.orientButtons,
      ...[
        ["icicle", "Root on top", "\u25BC Icicle"],
        ["flame", "Root at the bottom", "\u25B2 Flame"],
      ].map(([value, title, label]) =>
        h(
          "button",
          {
            type: "button",
            class: `seg-btn${state.orient === value ? " active" : ""}`,
            "aria-pressed": String(state.orient === value),
            title,
            onclick: () => this.app.navigate({ orient: value }, { replace: true }),
          },
          label,
        ),
      ),
    );
    const canSplit = this.app.caps.has("/api/v1/flamegraph", "by");
    this.splitToggle.checked = state.by === "line";
    this.splitToggle.disabled = !canSplit && state.by !== "line";
    this.splitLabel.title = canSplit
      ? "Split frames by source line"
      : "This server's flame graph API has no `by` parameter yet";
  }

  /** @param {number} i */
  _zoomTo(i) {
    const f = this.flame;
    if (!f) return;
    this.app.navigate({ zoom: encodePath(pathOf(f, i)) });
  }

  /**
   * @param {number} i
   * @param {MouseEvent | null} e
   */
  _hover(i, e) {
    const f = this.flame;
    if (!f || i < 0 || !e) {
      tooltip.hide();
      return;
    }
    const s = this.app.state;
    tooltip.show(
      e,
      describeFrame(f, i, { rate: Number(s.rate) || 99, unit: s.kind === "wall" ? "wall-s" : "CPU-s", zoom: this.graph.zoom }),
    );
  }

  _onSearchInput() {
    clearTimeout(this._searchTimer);
    this._searchTimer = setTimeout(() => {
      this.app.navigate({ search: this.search.value, focus: "", focus_file: "", focus_line: "" }, { replace: true });
    }, 120);
  }

  /** Resets zoom, search and focus (Esc). */
  reset() {
    this.search.value = "";
    this.app.navigate({ zoom: "", search: "", focus: "", focus_file: "", focus_line: "" });
  }

  /**
   * Keyboard shortcuts while this view is shown; returns true when handled.
   * @param {KeyboardEvent} e
   */
  onKey(e) {
    if (e.key === "/") {
      e.preventDefault();
      this.search.focus();
      this.search.select();
      return true;
    }
    if (e.key === "Escape") {
      this.reset();
      return true;
    }
    return false;
  }

  /**
   * Test and debugging hook: the page rectangle of the widest visible frame named `name`.
   * @param {string} name
   * @returns {{x: number, y: number, w: number, h: number, index: number} | null}
   */
  frameRectByName(name) {
    const f = this.flame;
    if (!f) return null;
    let best = -1;
    for (let i = 0; i < f.count; i += 1) {
      if (nameOf(f, i) === name && this.graph.rectOf(i) && (best < 0 || f.total[i] > f.total[best])) best = i;
    }
    if (best < 0) return null;
    const r = /** @type {{x: number, y: number, w: number, h: number}} */ (this.graph.rectOf(best));
    const c = this.graph.canvas.getBoundingClientRect();
    return { x: c.left + r.x, y: c.top + r.y, w: r.w, h: r.h, index: best };
  }
}

/**
 * The query bar: selector with autocomplete of label names and values, time range
 * presets and a custom range, kind and GPU state. Submitting writes the URL (and clears
 * the result cache, so "Query" also refreshes).
 * @module views/querybar
 */

import { getJson } from "../api.js";
import { h, replace } from "../dom.js";
import { applyCompletion, completionContext, rankCandidates } from "../selector.js";

/**
 * @typedef {import("../state.js").State} State
 * @typedef {import("../app.js").App} App
 * @typedef {import("../selector.js").Context} Context
 */

export const PRESETS = ["5m", "1h", "6h", "24h", "7d"];

export class QueryBar {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.selector = /** @type {HTMLInputElement} */ (
      h("input", {
        id: "selector",
        type: "text",
        class: "selector-input",
        placeholder: '{service="trainer", host=~"gpu-.*"}   (empty: everything)',
        "aria-label": "Label selector",
        "aria-autocomplete": "list",
        "aria-controls": "suggest",
        autocomplete: "off",
        spellcheck: "false",
        oninput: () => this._suggest(),
        onfocus: () => this._suggest(),
        onclick: () => this._suggest(),
        onkeydown: (/** @type {KeyboardEvent} */ e) => this._onKey(e),
        onblur: () => setTimeout(() => this._close(), 150),
      })
    );
    this.list = h("ul", { id: "suggest", class: "suggest", role: "listbox", hidden: true });
    this.presets = h("div", { class: "seg", role: "group", "aria-label": "Time range" });
    this.from = /** @type {HTMLInputElement} */ (h("input", { type: "text", class: "time-input", "aria-label": "From", placeholder: "now-1h" }));
    this.to = /** @type {HTMLInputElement} */ (h("input", { type: "text", class: "time-input", "aria-label": "To", placeholder: "now" }));
    this.custom = h(
      "div",
      { class: "custom-range", hidden: true },
      h("span", { class: "lbl" }, "from"),
      this.from,
      h("span", { class: "lbl" }, "to"),
      this.to,
      h("span", { class: "muted small" }, "now-15m, unix seconds or 2026-11-29T12:00:00Z"),
    );
    this.kind = h("div", { class: "seg", role: "group", "aria-label": "Kind" });
    this.gpu = /** @type {HTMLSelectElement} */ (
      h(
        "select",
        { "aria-label": "GPU state", title: "Only samples taken while the process's GPUs were in this state", onchange: () => this._submit({ gpu_state: this.gpu.value }) },
        h("option", { value: "any" }, "GPU: any"),
        h("option", { value: "busy" }, "GPU: busy"),
        h("option", { value: "idle" }, "GPU: idle"),
        h("option", { value: "none" }, "GPU: none"),
      )
    );
    this.el = h(
      "form",
      {
        class: "querybar",
        role: "search",
        onsubmit: (/** @type {Event} */ e) => {
          e.preventDefault();
          this._submit({});
        },
      },
      h("div", { class: "selector-wrap" }, this.selector, this.list),
      this.presets,
      this.kind,
      this.gpu,
      h("button", { type: "submit", class: "btn primary", title: "Run the query (refreshes the data)" }, "Query"),
      this.custom,
    );
    /** @type {string[]} */
    this.items = [];
    this.active = -1;
    /** @type {Context | null} */
    this.context = null;
    /** @type {Map<string, Promise<string[]>>} */
    this.lookups = new Map();
    this.customOpen = false;
  }

  /**
   * Shows a state (without stealing the user's typing).
   * @param {State} state
   */
  update(state) {
    if (document.activeElement !== this.selector) this.selector.value = state.selector;
    const preset = state.to ? null : PRESETS.find((p) => state.from === `now-${p}`) ?? null;
    this.customOpen = this.customOpen || preset === null;
    replace(
      this.presets,
      ...PRESETS.map((p) =>
        h(
          "button",
          { type: "button", class: `seg-btn${preset === p && !this.customOpen ? " active" : ""}`, "aria-pressed": String(preset === p), onclick: () => this._preset(p) },
          p,
        ),
      ),
      h(
        "button",
        {
          type: "button",
          class: `seg-btn${this.customOpen ? " active" : ""}`,
          "aria-expanded": String(this.customOpen),
          onclick: () => {
            this.customOpen = !this.customOpen;
            this.update(this.app.state);
            if (this.customOpen) this.from.focus();
          },
        },
        "custom",
      ),
    );
    this.custom.hidden = !this.customOpen;
    if (document.activeElement !== this.from) this.from.value = state.from;
    if (document.activeElement !== this.to) this.to.value = state.to;
    replace(
      this.kind,
      ...["cpu", "wall"].map((k) =>
        h(
          "button",
          {
            type: "button",
            class: `seg-btn${state.kind === k ? " active" : ""}`,
            "aria-pressed": String(state.kind === k),
            title: k === "cpu" ? "Running threads only" : "All threads, idle (waiting) included",
            onclick: () => this._submit({ kind: k }),
          },
          k,
        ),
      ),
    );
    this.gpu.value = state.gpu_state;
  }

  /** @param {string} p */
  _preset(p) {
    this.customOpen = false;
    this._submit({ from: `now-${p}`, to: "" });
  }

  /** @param {Partial<State>} changes */
  _submit(changes) {
    this._close();
    /** @type {Partial<State>} */
    const next = { selector: this.selector.value.trim(), ...changes };
    if (this.customOpen && !("from" in changes)) {
      next.from = this.from.value.trim() || "now-1h";
      next.to = this.to.value.trim();
    }
    this.app.navigate(next, { refresh: true });
  }

  /** Focuses the selector (keyboard shortcut `s`). */
  focus() {
    this.selector.focus();
  }

  async _suggest() {
    const text = this.selector.value;
    const caret = this.selector.selectionStart ?? text.length;
    const ctx = completionContext(text, caret);
    this.context = ctx;
    if (!ctx) {
      this._close();
      return;
    }
    const state = this.app.state;
    const range = { from: state.from, to: state.to };
    /** @type {string[]} */
    let candidates;
    try {
      if (ctx.type === "name") {
        candidates = await this._lookup(`names ${range.from} ${range.to}`, () => getJson("/api/v1/labels", range).then((b) => b.labels));
      } else {
        const path = `/api/v1/labels/${encodeURIComponent(ctx.name)}/values`;
        candidates = await this._lookup(`values ${ctx.name} ${range.from} ${range.to}`, () => getJson(path, range).then((b) => b.values));
      }
    } catch {
      candidates = [];
    }
    if (this.context !== ctx) return; // typed on meanwhile
    this.items = rankCandidates(candidates, ctx.prefix, 50);
    // preselect only when something was typed, so Enter on an untouched list submits
    this.active = this.items.length && ctx.prefix ? 0 : -1;
    this._renderList(ctx);
  }

  /**
   * @param {string} key
   * @param {() => Promise<string[]>} load
   */
  _lookup(key, load) {
    let p = this.lookups.get(key);
    if (!p) {
      p = load();
      this.lookups.set(key, p);
      p.catch(() => this.lookups.delete(key));
    }
    return p;
  }

  /** @param {Context} ctx */
  _renderList(ctx) {
    if (!this.items.length || document.activeElement !== this.selector) {
      this._close();
      return;
    }
    replace(
      this.list,
      h("li", { class: "suggest-head", role: "presentation" }, ctx.type === "name" ? "label names" : `values of ${ctx.name}`),
      ...this.items.map((item, k) =>
        h(
          "li",
          {
            role: "option",
            class: k === this.active ? "active" : null,
            "aria-selected": String(k === this.active),
            onmousedown: (/** @type {MouseEvent} */ e) => {
              e.preventDefault();
              this._accept(k);
            },
          },
          item,
        ),
      ),
    );
    this.list.hidden = false;
  }

  _close() {
    this.list.hidden = true;
    this.items = [];
    this.active = -1;
  }

  /** @param {number} k */
  _accept(k) {
    const ctx = this.context;
    const choice = this.items[k];
    if (!ctx || choice === undefined) return;
    const caret = this.selector.selectionStart ?? this.selector.value.length;
    const next = applyCompletion(this.selector.value, caret, ctx, choice);
    this.selector.value = next.text;
    this.selector.setSelectionRange(next.caret, next.caret);
    this._close();
    this._suggest();
  }

  /** @param {KeyboardEvent} e */
  _onKey(e) {
    const open = !this.list.hidden && this.items.length > 0;
    if (e.key === "ArrowDown" && open) {
      e.preventDefault();
      this.active = (this.active + 1) % this.items.length;
      if (this.context) this._renderList(this.context);
    } else if (e.key === "ArrowUp" && open) {
      e.preventDefault();
      this.active = (this.active - 1 + this.items.length) % this.items.length;
      if (this.context) this._renderList(this.context);
    } else if ((e.key === "Tab" && open) || (e.key === "Enter" && open && this.active >= 0)) {
      e.preventDefault();
      this._accept(Math.max(this.active, 0));
    } else if (e.key === "Escape") {
      if (open) {
        e.preventDefault();
        e.stopPropagation();
        this._close();
      } else {
        this.selector.blur();
      }
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Home" || e.key === "End") {
      setTimeout(() => this._suggest(), 0);
    }
  }
}

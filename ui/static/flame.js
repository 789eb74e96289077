/**
 * The canvas flame graph renderer: paints what {@link module:flame-layout} lays out and
 * turns pointer events into hover and click callbacks. Knows nothing about the page,
 * the API or the URL; the flame view wires it up.
 *
 * Drawing batches rectangles by palette colour (one path and one fill per colour) and
 * writes labels only where they fit, so a 100k-node graph paints in a few tens of ms.
 * Hover highlights are drawn on a second, overlay canvas: moving the pointer never
 * repaints the graph.
 * @module flame
 */

import { DIM, PALETTE_RGB, textColour } from "./colour.js";
import { frameBuffers, frameRect, depthIndex, fitLabel, hitTest, rowTop, visibleFrames } from "./flame-layout.js";
import { nameOf } from "./flame-model.js";
import { fillSpan, pixelWord, replicateRow, spanPixels } from "./raster.js";

const FONT = '11.5px "DejaVu Sans Mono", ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
const ROW = 18;
/** Frames narrower than this (CSS px) merge with their right neighbours on the same row. */
const MERGE_WIDTH = 2;
/** Palette colours as pixel words. */
const WORDS = PALETTE_RGB.map(pixelWord);
const WHITE = pixelWord([255, 255, 255]);

/**
 * @typedef {import("./flame-model.js").Flame} Flame
 * @typedef {import("./flame-layout.js").Viewport} Viewport
 *
 * @typedef {Object} FlameOptions
 * @property {(i: number, event: MouseEvent) => void} [onClick]  a frame was clicked
 * @property {(i: number, event: MouseEvent | null) => void} [onHover] pointer moved onto a frame (-1: off)
 * @property {number} [rowHeight]
 * @property {string} [label] accessible name of the canvas
 */

export class FlameGraph {
  /**
   * Builds the canvases inside `host` (an empty element whose width is the graph's).
   * @param {HTMLElement} host
   * @param {FlameOptions} [options]
   */
  constructor(host, options = {}) {
    this.host = host;
    this.options = options;
    this.rowHeight = options.rowHeight ?? ROW;
    host.classList.add("flame-host");
    this.canvas = document.createElement("canvas");
    this.canvas.className = "flame-canvas";
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", options.label ?? "flame graph");
    this.overlay = document.createElement("canvas");
    this.overlay.className = "flame-overlay";
    host.append(this.canvas, this.overlay);
    /** @type {Flame | null} */
    this.flame = null;
    /** @type {Int32Array[]} */
    this.rows = [];
    this.zoom = 0;
    /** @type {"icicle"|"flame"} */
    this.orient = "icicle";
    /** @type {Uint8Array | null} nodes to keep coloured; others dimmed */
    this.highlight = null;
    this.hovered = -1;
    /** @type {import("./flame-layout.js").Frames} */
    this.frames = frameBuffers(0);
    this.width = 0;
    this.rowsShown = 1;
    /** Milliseconds the last {@link draw} took, and the frames it painted. */
    this.lastDraw = { ms: 0, frames: 0 };
    /** Rectangles the last draw painted (after merging sub-pixel runs). */
    this.lastRects = 0;
    /** @type {ImageData | null} reused between draws of one size */
    this.image = null;
    /** @type {Uint32Array | null} */
    this.pixels = null;
    this.charWidth = 7;
    this._bindEvents();
  }

  /**
   * Shows a new profile; resets zoom and hover.
   * @param {Flame} flame
   */
  setData(flame) {
    this.flame = flame;
    this.rows = depthIndex(flame);
    this.frames = frameBuffers(flame.count);
    this.zoom = 0;
    this.hovered = -1;
  }

  /** @param {number} i node spanning the full width */
  setZoom(i) {
    this.zoom = this.flame && i >= 0 && i < this.flame.count ? i : 0;
  }

  /** @param {"icicle"|"flame"} orient */
  setOrient(orient) {
    this.orient = orient;
  }

  /** @param {Uint8Array | null} marks 1 for nodes to keep coloured, or null for all */
  setHighlight(marks) {
    this.highlight = marks;
  }

  /** @returns {Viewport} */
  viewport() {
    return {
      zoom: this.zoom,
      width: this.width,
      rowHeight: this.rowHeight,
      orient: this.orient,
      rows: this.rowsShown,
    };
  }

  /**
   * Lays out and paints the graph. Returns the time taken and frames painted.
   * @returns {{ms: number, frames: number}}
   */
  draw() {
    const t0 = performance.now();
    const f = this.flame;
    const width = Math.max(1, Math.floor(this.host.clientWidth || 800));
    this.width = width;
    if (!f || f.count === 0) {
      const ctx = this._resize(width, this.rowHeight);
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, width, this.rowHeight);
      this.lastDraw = { ms: performance.now() - t0, frames: 0 };
      return this.lastDraw;
    }
    const frames = visibleFrames(f, this.zoom, width, this.frames);
    this.rowsShown = f.maxDepth + 1;
    const ctx = this._resize(width, this.rowsShown * this.rowHeight);
    const vp = this.viewport();
    this._paintRects(ctx, f, frames, vp);
    this._paintLabels(ctx, f, frames, vp);
    this._paintHover();
    this.lastDraw = { ms: performance.now() - t0, frames: frames.count };
    this.canvas.dataset.frames = String(frames.count);
    this.canvas.dataset.drawMs = this.lastDraw.ms.toFixed(1);
    return this.lastDraw;
  }

  /**
   * Sizes both canvases for the device pixel ratio; returns the graph's context.
   * @param {number} width
   * @param {number} height
   * @returns {CanvasRenderingContext2D}
   */
  _resize(width, height) {
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.canvas, this.overlay]) {
      const w = Math.round(width * dpr);
      const h = Math.round(height * dpr);
      if (c.width !== w || c.height !== h) {
        c.width = w;
        c.height = h;
        c.style.width = `${width}px`;
        c.style.height = `${height}px`;
      }
    }
    const ctx = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext("2d", { alpha: false }));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = FONT;
    this.charWidth = ctx.measureText("m").width || 7;
    return ctx;
  }

  /**
   * Paints the background and the frames into a pixel buffer, one scanline per depth
   * then copied down its row band (see {@link module:raster}), and puts the buffer on the
   * canvas in one call. Runs of adjacent frames
   * narrower than {@link MERGE_WIDTH} on one row are painted as one rectangle (in the
   * first frame's colour; a highlight boundary ends a run).
   * @param {CanvasRenderingContext2D} ctx
   * @param {Flame} f
   * @param {import("./flame-layout.js").Frames} frames
   * @param {Viewport} vp
   */
  _paintRects(ctx, f, frames, vp) {
    const dpr = window.devicePixelRatio || 1;
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    if (!this.image || this.image.width !== cw || this.image.height !== ch) {
      this.image = ctx.createImageData(cw, ch);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const pixels = /** @type {Uint32Array} */ (this.pixels);
    pixels.fill(WHITE);
    const mark = this.highlight;
    const rows = this.rowsShown;
    // each depth's band of device-pixel rows: frames are written into its first scanline
    const bandTop = new Int32Array(rows);
    const bandBottom = new Int32Array(rows);
    const gapPx = Math.max(1, Math.round(dpr));
    for (let d = 0; d < rows; d += 1) {
      bandTop[d] = Math.round(rowTop(d, vp) * dpr);
      bandBottom[d] = Math.round((rowTop(d, vp) + vp.rowHeight) * dpr) - gapPx;
    }
    const used = new Uint8Array(rows);
    // the open run of narrow frames per depth: x0 and x1 in device pixels (x0 -1: none)
    const runStart = new Int32Array(rows).fill(-1);
    const runEnd = new Int32Array(rows);
    const runColour = new Uint16Array(rows);
    let rects = 0;
    for (let k = 0; k < frames.count; k += 1) {
      const i = frames.index[k];
      const d = f.depth[i];
      const w = frames.w[k];
      const colour = mark !== null && !mark[i] ? DIM : f.colour[i];
      const [x0, x1] = spanPixels(frames.x[k], w, dpr);
      if (w < MERGE_WIDTH && runStart[d] >= 0 && (runColour[d] === DIM) === (colour === DIM) && x0 <= runEnd[d] + 1) {
        if (x1 > runEnd[d]) runEnd[d] = x1;
        continue;
      }
      if (runStart[d] >= 0) {
        fillSpan(pixels, cw, bandTop[d] * cw, runStart[d], runEnd[d], WORDS[runColour[d]]);
        runStart[d] = -1;
      }
      used[d] = 1;
      rects += 1;
      if (w < MERGE_WIDTH) {
        runStart[d] = x0;
        runEnd[d] = x1;
        runColour[d] = colour;
      } else {
        fillSpan(pixels, cw, bandTop[d] * cw, x0, x1, WORDS[colour]);
      }
    }
    for (let d = 0; d < rows; d += 1) {
      if (runStart[d] >= 0) fillSpan(pixels, cw, bandTop[d] * cw, runStart[d], runEnd[d], WORDS[runColour[d]]);
      if (used[d]) replicateRow(pixels, cw, bandTop[d], bandBottom[d]);
    }
    ctx.putImageData(/** @type {ImageData} */ (this.image), 0, 0);
    this.lastRects = rects;
  }

  /**
   * @param {CanvasRenderingContext2D} ctx
   * @param {Flame} f
   * @param {import("./flame-layout.js").Frames} frames
   * @param {Viewport} vp
   */
  _paintLabels(ctx, f, frames, vp) {
    const cw = this.charWidth;
    const minWidth = cw * 3 + 6;
    ctx.textBaseline = "middle";
    const mark = this.highlight;
    let colour = "";
    for (let k = 0; k < frames.count; k += 1) {
      const w = frames.w[k];
      if (w < minWidth) continue;
      const i = frames.index[k];
      const text = fitLabel(nameOf(f, i), Math.floor((w - 6) / cw));
      if (!text) continue;
      const c = textColour(mark && !mark[i] ? DIM : f.colour[i]);
      if (c !== colour) {
        ctx.fillStyle = c;
        colour = c;
      }
      ctx.fillText(text, frames.x[k] + 3, rowTop(f.depth[i], vp) + vp.rowHeight / 2);
    }
  }

  /** Draws the hover outline on the overlay canvas. */
  _paintHover() {
    const ctx = /** @type {CanvasRenderingContext2D} */ (this.overlay.getContext("2d"));
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    if (!this.flame || this.hovered < 0) return;
    const r = frameRect(this.flame, this.hovered, this.viewport());
    if (!r) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.strokeStyle = "#1d232b";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(r.x + 0.75, r.y + 0.75, Math.max(r.w - 1.5, 1), r.h - 2);
  }

  /**
   * Where node `i` is on the page (CSS pixels relative to the canvas), or null.
   * @param {number} i
   */
  rectOf(i) {
    return this.flame ? frameRect(this.flame, i, this.viewport()) : null;
  }

  /**
   * The node at canvas-relative CSS pixel (x, y), or -1.
   * @param {number} x
   * @param {number} y
   */
  nodeAt(x, y) {
    return this.flame ? hitTest(this.flame, this.rows, this.viewport(), x, y) : -1;
  }

  _bindEvents() {
    /** @type {MouseEvent | null} */
    let pending = null;
    const point = (/** @type {MouseEvent} */ e) => {
      const r = this.overlay.getBoundingClientRect();
      return this.nodeAt(e.clientX - r.left, e.clientY - r.top);
    };
    this.overlay.addEventListener("mousemove", (e) => {
      if (pending === null) {
        requestAnimationFrame(() => {
          const ev = /** @type {MouseEvent} */ (pending);
          pending = null;
          this.hoverAt(point(ev), ev);
        });
      }
      pending = e;
    });
    this.overlay.addEventListener("mouseleave", () => this.hoverAt(-1, null));
    this.overlay.addEventListener("click", (e) => {
      const i = point(e);
      if (i >= 0 && this.options.onClick) this.options.onClick(i, e);
    });
  }

  /**
   * Sets the hovered node, redraws the outline and tells the host.
   * @param {number} i
   * @param {MouseEvent | null} event
   */
  hoverAt(i, event) {
    if (i !== this.hovered) {
      this.hovered = i;
      this._paintHover();
      this.overlay.style.cursor = i >= 0 ? "pointer" : "default";
    }
    if (this.options.onHover) this.options.onHover(i, event);
  }
}

/**
 * Flame graph geometry, pure: which frames are visible at a zoom, where each one is, and
 * which frame a point hits. The renderer ({@link module:flame}) only paints what this
 * module computes, so drawing and hit-testing always agree.
 *
 * Horizontal: the zoomed node spans the full width, its ancestors too (drawn above it,
 * so the way back is visible); other nodes outside its subtree are not shown. Frames
 * narrower than `minWidth` pixels are skipped with their whole subtree (children are
 * never wider than their parent), which keeps a draw proportional to what can be seen.
 * Vertical: one row per depth, the root on top (`icicle`) or at the bottom (`flame`).
 * @module flame-layout
 */

/**
 * @typedef {import("./flame-model.js").Flame} Flame
 *
 * @typedef {Object} Viewport
 * @property {number} zoom      index of the node spanning the full width
 * @property {number} width     CSS pixels
 * @property {number} rowHeight CSS pixels per depth
 * @property {"icicle"|"flame"} orient
 * @property {number} rows      rows the canvas has (for `flame`, row 0 is at the bottom)
 *
 * @typedef {Object} Frames   visible frames, parallel arrays of `count` entries
 * @property {number} count
 * @property {Int32Array} index
 * @property {Float32Array} x
 * @property {Float32Array} w
 * @property {number} maxDepth deepest visible depth
 */

/** Frames narrower than this many CSS pixels are not drawn (nor their subtrees). */
export const MIN_WIDTH = 0.35;

/**
 * Reusable output buffers for {@link visibleFrames}, sized for `count` nodes.
 * @param {number} count
 * @returns {Frames}
 */
export function frameBuffers(count) {
  return {
    count: 0,
    index: new Int32Array(count),
    x: new Float32Array(count),
    w: new Float32Array(count),
    maxDepth: 0,
  };
}

/**
 * Pixels per value unit at a zoom.
 * @param {Flame} f
 * @param {number} zoom
 * @param {number} width
 */
export function scaleOf(f, zoom, width) {
  const t = f.total[zoom];
  return t > 0 ? width / t : 0;
}

/**
 * Computes the visible frames of `f` at `zoom` into `out` (see {@link frameBuffers}).
 * @param {Flame} f
 * @param {number} zoom
 * @param {number} width CSS pixels
 * @param {Frames} out
 * @param {number} [minWidth]
 * @returns {Frames} `out`
 */
export function visibleFrames(f, zoom, width, out, minWidth = MIN_WIDTH) {
  let n = 0;
  let maxDepth = 0;
  if (f.count === 0) {
    out.count = 0;
    out.maxDepth = 0;
    return out;
  }
  // ancestors of the zoomed node, then the node itself, full width
  const chain = [];
  for (let k = zoom; k >= 0; k = f.parent[k]) chain.push(k);
  for (let c = chain.length - 1; c >= 0; c -= 1) {
    out.index[n] = chain[c];
    out.x[n] = 0;
    out.w[n] = width;
    n += 1;
  }
  maxDepth = f.depth[zoom];
  const scale = scaleOf(f, zoom, width);
  const origin = f.start[zoom];
  const end = f.end[zoom];
  let i = zoom + 1;
  while (i < end) {
    const w = f.total[i] * scale;
    if (w < minWidth) {
      i = f.end[i];
      continue;
    }
    out.index[n] = i;
    out.x[n] = (f.start[i] - origin) * scale;
    out.w[n] = w;
    n += 1;
    if (f.depth[i] > maxDepth) maxDepth = f.depth[i];
    i += 1;
  }
  out.count = n;
  out.maxDepth = maxDepth;
  return out;
}

/**
 * Top edge of a depth's row, CSS pixels.
 * @param {number} depth
 * @param {Viewport} vp
 */
export function rowTop(depth, vp) {
  return vp.orient === "icicle" ? depth * vp.rowHeight : (vp.rows - 1 - depth) * vp.rowHeight;
}

/**
 * The depth of the row at height `y`, or -1 outside the rows.
 * @param {number} y CSS pixels from the canvas top
 * @param {Viewport} vp
 */
export function depthAt(y, vp) {
  if (y < 0) return -1;
  const row = Math.floor(y / vp.rowHeight);
  if (row >= vp.rows) return -1;
  return vp.orient === "icicle" ? row : vp.rows - 1 - row;
}

/**
 * Node indices per depth, left to right (preorder keeps a depth's nodes in order).
 * @param {Flame} f
 * @returns {Int32Array[]}
 */
export function depthIndex(f) {
  const counts = new Int32Array(f.maxDepth + 1);
  for (let i = 0; i < f.count; i += 1) counts[f.depth[i]] += 1;
  const rows = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(f.maxDepth + 1);
  for (let i = 0; i < f.count; i += 1) {
    const d = f.depth[i];
    rows[d][fill[d]] = i;
    fill[d] += 1;
  }
  return rows;
}

/**
 * The node under point (x, y), or -1. O(log n): a binary search in the point's row.
 * Frames too narrow to be drawn are not hit.
 * @param {Flame} f
 * @param {Int32Array[]} rows from {@link depthIndex}
 * @param {Viewport} vp
 * @param {number} x CSS pixels
 * @param {number} y CSS pixels
 * @param {number} [minWidth]
 */
export function hitTest(f, rows, vp, x, y, minWidth = MIN_WIDTH) {
  if (x < 0 || x >= vp.width || f.count === 0) return -1;
  const depth = depthAt(y, vp);
  if (depth < 0 || depth >= rows.length) return -1;
  const zoom = vp.zoom;
  if (depth <= f.depth[zoom]) {
    let k = zoom;
    while (f.depth[k] > depth) k = f.parent[k];
    return k;
  }
  const scale = scaleOf(f, zoom, vp.width);
  const v = f.start[zoom] + x / scale;
  const row = rows[depth];
  let lo = 0;
  let hi = row.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (f.start[row[mid]] <= v) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return -1;
  const i = row[found];
  if (v >= f.start[i] + f.total[i]) return -1;
  if (i <= zoom || i >= f.end[zoom]) return -1;
  if (f.total[i] * scale < minWidth) return -1;
  for (let k = f.parent[i]; k > zoom; k = f.parent[k]) if (f.total[k] * scale < minWidth) return -1;
  return i;
}

/**
 * Where node `i` is drawn at a viewport, CSS pixels, or `null` when it is not visible.
 * @param {Flame} f
 * @param {number} i
 * @param {Viewport} vp
 * @returns {{x: number, y: number, w: number, h: number} | null}
 */
export function frameRect(f, i, vp) {
  const zoom = vp.zoom;
  const y = rowTop(f.depth[i], vp);
  let onChain = false;
  for (let k = zoom; k >= 0; k = f.parent[k]) if (k === i) onChain = true;
  if (onChain) return { x: 0, y, w: vp.width, h: vp.rowHeight };
  if (i <= zoom || i >= f.end[zoom]) return null;
  const scale = scaleOf(f, zoom, vp.width);
  const w = f.total[i] * scale;
  if (w < MIN_WIDTH) return null;
  return { x: (f.start[i] - f.start[zoom]) * scale, y, w, h: vp.rowHeight };
}

/**
 * The longest prefix of `text` that fits `maxChars` characters, with an ellipsis when cut.
 * @param {string} text
 * @param {number} maxChars
 */
export function fitLabel(text, maxChars) {
  if (maxChars < 2) return "";
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars - 1)}\u2026`;
}

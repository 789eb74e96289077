/**
 * Frame colours. Pure: a frame's colour depends only on its package/module, so the same
 * code looks the same in every graph, view and reload; diff frames are coloured by the
 * change of their share.
 *
 * Colours are indices into {@link PALETTE} (quantised, so the renderer can batch
 * rectangles of one colour into one path).
 * @module colour
 */

/** Hue steps in the package palette. */
const HUES = 36;
/** Lightness variants per hue (module within a package). */
const SHADES = 3;

/** Index of the grey used for frames with no file (root, process pseudo-frames). */
export const NEUTRAL = HUES * SHADES;
/** Index of the colour of frames dimmed by a search or focus. */
export const DIM = NEUTRAL + 1;
/** Diff palette: `DIFF_STEPS` greens, one neutral, `DIFF_STEPS` reds. */
export const DIFF_STEPS = 6;
/** Index of the first diff colour (strongest green). */
export const DIFF_BASE = DIM + 1;
/** Index of the diff colour of an unchanged frame. */
export const DIFF_NEUTRAL = DIFF_BASE + DIFF_STEPS;

/** Every frame colour as `[hue, saturation %, lightness %]`, by index. */
const HSL = buildPalette();

/** Every frame colour as a CSS string, by index. */
export const PALETTE = HSL.map(([h, s, l]) => `hsl(${h} ${s}% ${l}%)`);

/** Every frame colour as `[r, g, b]` (0-255), by index, for painting pixels directly. */
export const PALETTE_RGB = HSL.map(([h, s, l]) => hslToRgb(h, s, l));

function buildPalette() {
  /** @type {Array<[number, number, number]>} */
  const out = [];
  for (let h = 0; h < HUES; h += 1) {
    for (let s = 0; s < SHADES; s += 1) out.push([Math.round((h * 360) / HUES), 58 - s * 6, 76 - s * 7]);
  }
  out.push([220, 8, 80]); // NEUTRAL
  out.push([220, 10, 93]); // DIM
  for (let i = DIFF_STEPS; i >= 1; i -= 1) out.push([140, 30 + i * 8, 88 - i * 7]);
  out.push([220, 8, 86]); // DIFF_NEUTRAL
  for (let i = 1; i <= DIFF_STEPS; i += 1) out.push([2, 30 + i * 9, 88 - i * 6]);
  return out;
}

/**
 * CSS `hsl()` to RGB, as browsers convert it.
 * @param {number} h degrees
 * @param {number} s percent
 * @param {number} l percent
 * @returns {[number, number, number]} 0-255 each
 */
export function hslToRgb(h, s, l) {
  const sat = s / 100;
  const light = l / 100;
  const f = (/** @type {number} */ n) => {
    const k = (n + h / 30) % 12;
    const a = sat * Math.min(light, 1 - light);
    return Math.round(255 * (light - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/**
 * 32-bit FNV-1a of a string.
 * @param {string} s
 * @returns {number}
 */
export function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i += 1) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The package and module a Python file belongs to, for colouring.
 *
 * `…/site-packages/torch/nn/modules/linear.py` → `{package: "torch", module: "torch.nn"}`;
 * `/usr/lib/python3.11/json/decoder.py` → `{package: "json", …}`; a plain script
 * `/work/train.py` → `{package: "train", module: "train"}`; no file → `null`.
 * @param {string} file
 * @returns {{package: string, module: string} | null}
 */
export function packageOf(file) {
  if (!file) return null;
  const path = file.replace(/\\/g, "/");
  const site = path.match(/\/(?:site|dist)-packages\/(.*)$/);
  const std = path.match(/\/lib\/python\d+(?:\.\d+)?\/(.*)$/);
  const rest = site ? site[1] : std ? std[1] : null;
  if (rest !== null) {
    const parts = rest.replace(/\.pyc?$/, "").split("/");
    return { package: parts[0], module: parts.slice(0, 2).join(".") };
  }
  if (path.startsWith("<")) return { package: path, module: path };
  const parts = path.replace(/\.pyc?$/, "").split("/").filter(Boolean);
  const base = parts[parts.length - 1] || path;
  return { package: base, module: base };
}

/**
 * The palette index of a frame: hue from its package, shade from its module.
 * @param {string} file
 * @returns {number}
 */
export function colourIndex(file) {
  const pkg = packageOf(file);
  if (!pkg) return NEUTRAL;
  const hue = fnv1a(pkg.package) % HUES;
  const shade = fnv1a(pkg.module) % SHADES;
  return hue * SHADES + shade;
}

/**
 * The diff palette index for a frame whose share went from `base` to `comparison`
 * (each a fraction of its own profile). Unchanged within 0.1 percentage points, or
 * within 5 % of the larger share, is neutral; otherwise intensity grows with the
 * relative change, red for growth and green for shrinkage.
 * @param {number} base
 * @param {number} comparison
 * @returns {number}
 */
export function diffColourIndex(base, comparison) {
  const delta = comparison - base;
  const larger = Math.max(base, comparison);
  if (larger === 0 || Math.abs(delta) < 0.001 || Math.abs(delta) / larger < 0.05) return DIFF_NEUTRAL;
  const rel = Math.abs(delta) / larger; // (0.05, 1]
  const step = Math.min(DIFF_STEPS, Math.max(1, Math.ceil(rel * DIFF_STEPS)));
  return delta > 0 ? DIFF_NEUTRAL + step : DIFF_NEUTRAL - step;
}

/**
 * Text colour readable on a palette colour.
 * @param {number} index
 * @returns {string}
 */
export function textColour(index) {
  if (index === DIM) return "#8a9099";
  if (index >= DIFF_BASE) {
    const step = Math.abs(index - DIFF_NEUTRAL);
    return step >= 4 ? "#fff" : "#1d232b";
  }
  return "#1d232b";
}

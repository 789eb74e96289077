/**
 * Painting rectangles straight into a pixel buffer. Pure: no DOM.
 *
 * The flame graph renderer lays frames out, turns each into whole device pixels and fills
 * them here, then hands the buffer to the canvas in one `putImageData`. Every frame of one
 * depth covers the same pixel rows, so a frame is written once, into its row band's first
 * scanline ({@link fillSpan}), and each band's first scanline is then copied down the band
 * ({@link replicateRow}): a frame costs a few pixel writes, whatever its height, and a
 * draw of 100,000 frames stays far cheaper than 100,000 `fillRect` calls.
 * @module raster
 */

/**
 * The 32-bit pixel word for an opaque colour, as an `ImageData`'s `Uint32Array` view holds
 * it on little-endian machines (every platform browsers run on): bytes R, G, B, A.
 * @param {[number, number, number]} rgb
 * @returns {number}
 */
export function pixelWord([r, g, b]) {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/**
 * Fills the rectangle `[x0, x1) × [y0, y1)` (device pixels, clipped to the buffer).
 * @param {Uint32Array} pixels row-major, `stride` pixels per row
 * @param {number} stride
 * @param {number} x0
 * @param {number} y0
 * @param {number} x1
 * @param {number} y1
 * @param {number} word from {@link pixelWord}
 */
export function fillRect(pixels, stride, x0, y0, x1, y1, word) {
  const rows = pixels.length / stride;
  const left = Math.max(0, x0);
  const right = Math.min(stride, x1);
  const top = Math.max(0, y0);
  const bottom = Math.min(rows, y1);
  if (left >= right || top >= bottom) return;
  for (let y = top; y < bottom; y += 1) {
    const row = y * stride;
    pixels.fill(word, row + left, row + right);
  }
}

/**
 * Fills pixels `[x0, x1)` of the scanline starting at `offset` (clipped to `stride`).
 * @param {Uint32Array} pixels
 * @param {number} stride pixels per scanline
 * @param {number} offset index of the scanline's first pixel
 * @param {number} x0
 * @param {number} x1
 * @param {number} word
 */
export function fillSpan(pixels, stride, offset, x0, x1, word) {
  const left = x0 < 0 ? 0 : x0;
  const right = x1 > stride ? stride : x1;
  if (right - left > 16) {
    pixels.fill(word, offset + left, offset + right);
    return;
  }
  for (let p = offset + left; p < offset + right; p += 1) pixels[p] = word;
}

/**
 * Copies scanline `y0` onto scanlines `y0 + 1` to `y1 - 1`.
 * @param {Uint32Array} pixels
 * @param {number} stride
 * @param {number} y0
 * @param {number} y1
 */
export function replicateRow(pixels, stride, y0, y1) {
  const src = y0 * stride;
  const last = Math.min(y1, pixels.length / stride);
  for (let y = y0 + 1; y < last; y += 1) pixels.copyWithin(y * stride, src, src + stride);
}

/**
 * Device-pixel bounds of a frame drawn at CSS pixels (x, w): edges rounded to whole
 * pixels, at least one pixel wide, and a one-pixel gap on the right of frames 3 CSS
 * pixels or wider so neighbours stay apart.
 * @param {number} x CSS pixels
 * @param {number} w CSS pixels
 * @param {number} dpr device pixels per CSS pixel
 * @returns {[number, number]} x0, x1 in device pixels
 */
export function spanPixels(x, w, dpr) {
  const x0 = Math.round(x * dpr);
  let x1 = Math.round((x + (w >= 3 ? w - 1 : w)) * dpr);
  if (x1 <= x0) x1 = x0 + 1;
  return [x0, x1];
}

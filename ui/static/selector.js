/**
 * Selector editing helpers for the query bar's autocomplete. Pure: given the text and the
 * caret, what is being typed (a label name or a label's value), and the text after a
 * completion is chosen. Selector syntax as in the API: `{service="trainer", host=~"gpu-.*"}`.
 * @module selector
 */

/**
 * @typedef {{type: "name", prefix: string, start: number}
 *   | {type: "value", name: string, op: string, prefix: string, start: number}} Context
 */

const VALUE_RE = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/;
const NAME_RE = /(?:^|[{,])\s*([A-Za-z_][A-Za-z0-9_]*)?$/;

/**
 * What the user is typing at `caret`, or null (e.g. just after an operator).
 * @param {string} text
 * @param {number} caret
 * @returns {Context | null}
 */
export function completionContext(text, caret) {
  const before = text.slice(0, caret);
  const v = before.match(VALUE_RE);
  if (v) {
    const prefix = v[3].replace(/\\(.)/g, "$1");
    return { type: "value", name: v[1], op: v[2], prefix, start: caret - v[3].length };
  }
  if (insideString(before)) return null;
  const n = before.match(NAME_RE);
  if (n) {
    const prefix = n[1] ?? "";
    return { type: "name", prefix, start: caret - prefix.length };
  }
  return null;
}

/**
 * Whether `text` ends inside an open double-quoted string.
 * @param {string} text
 */
function insideString(text) {
  let open = false;
  for (let i = 0; i < text.length; i += 1) {
    if (open && text[i] === "\\") i += 1;
    else if (text[i] === '"') open = !open;
  }
  return open;
}

/**
 * A value quoted for a selector string (backslash and double quote escaped).
 * @param {string} value
 */
export function escapeValue(value) {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * The text and caret after choosing `choice` in context `ctx`.
 *
 * A name becomes `name=""` with the caret between the quotes (braces added when the
 * selector has none); a value replaces what was typed of it and closes the quote.
 * @param {string} text
 * @param {number} caret
 * @param {Context} ctx
 * @param {string} choice
 * @returns {{text: string, caret: number}}
 */
export function applyCompletion(text, caret, ctx, choice) {
  if (ctx.type === "name") {
    let end = caret;
    while (end < text.length && /[A-Za-z0-9_]/.test(text[end])) end += 1;
    let head = text.slice(0, ctx.start);
    let tail = text.slice(end);
    if (!head.trimStart().startsWith("{")) head = `{${head.trimStart()}`;
    if (!tail.includes("}")) tail = `${tail}}`;
    const op = tail.match(/^\s*(=~|!~|!=|=)/) ? "" : '=""';
    const inserted = `${choice}${op}`;
    return { text: head + inserted + tail, caret: head.length + inserted.length - (op ? 1 : 0) };
  }
  // value: replace through the closing quote, if any
  let end = caret;
  while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
  const closing = end < text.length ? end + 1 : end;
  const head = text.slice(0, ctx.start);
  let tail = text.slice(closing);
  const inserted = `${escapeValue(choice)}"`;
  if (!text.slice(0, ctx.start).includes("{")) tail = tail || "}";
  else if (!text.includes("}", closing) && !tail.includes("}")) tail = `${tail}}`;
  return { text: head + inserted + tail, caret: head.length + inserted.length };
}

/**
 * Up to `limit` candidates starting with (first) or containing `prefix`, case-insensitive.
 * @param {string[]} candidates
 * @param {string} prefix
 * @param {number} [limit]
 */
export function rankCandidates(candidates, prefix, limit = 50) {
  const p = prefix.toLowerCase();
  const starts = [];
  const contains = [];
  for (const c of candidates) {
    const l = c.toLowerCase();
    if (l.startsWith(p)) starts.push(c);
    else if (p && l.includes(p)) contains.push(c);
  }
  return [...starts, ...contains].slice(0, limit);
}

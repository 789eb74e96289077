/**
 * The flame graph's data model: the API's nested tree flattened into compact columns plus
 * a string table (as Perforator ships it), with paths and search over it. Derived trees
 * (sandwich, diff) are in {@link module:flame-transforms}.
 *
 * Nodes are numbered in depth-first preorder, children in the API's order (largest
 * first), so a node's subtree is the index range `[i, end[i])` and the nodes of one depth
 * appear left to right. No DOM, no canvas: unit-tested with `node --test`.
 * @module flame-model
 */

import { colourIndex } from "./colour.js";

/**
 * A node as the API sends it. Diff nodes carry `base_*`/`comparison_*` instead of
 * `self`/`total`; line-split nodes may carry `line`.
 * @typedef {Object} TreeNode
 * @property {string} name
 * @property {string} [file]
 * @property {number} [line]
 * @property {number} [self]
 * @property {number} [total]
 * @property {TreeNode[]} [children]
 */

/**
 * @typedef {Object} Flame
 * @property {number} count        nodes
 * @property {number} maxDepth     deepest node's depth (root is 0)
 * @property {string[]} strings    string table (names and files)
 * @property {Int32Array} name     string index of each node's function name
 * @property {Int32Array} file     string index of each node's file
 * @property {Int32Array} line     line number, 0 when frames are merged per function
 * @property {Uint16Array} depth
 * @property {Int32Array} parent   -1 for the root
 * @property {Int32Array} end      one past the last node of the subtree
 * @property {Float64Array} start  left edge, in value units from the root's left edge
 * @property {Float64Array} total  width, in value units
 * @property {Float64Array} self   value not covered by children
 * @property {Uint16Array} colour  palette index
 * @property {TreeNode[]} nodes    the source nodes, for tooltips
 */

/**
 * @typedef {Object} FlattenOptions
 * @property {(n: TreeNode) => number} [value]  a node's width (default `total`)
 * @property {(n: TreeNode) => number} [self]   a node's self value (default `self`)
 * @property {(n: TreeNode) => number} [colour] a node's palette index (default by package)
 */

/**
 * Flattens a nested tree into columns, iteratively (trees can be 256 deep).
 * @param {TreeNode} root
 * @param {FlattenOptions} [options]
 * @returns {Flame}
 */
export function flattenTree(root, options = {}) {
  const value = options.value ?? ((n) => n.total ?? 0);
  const selfOf = options.self ?? ((n) => n.self ?? 0);
  const count = countNodes(root);
  const f = allocate(count);
  /** @type {Map<string, number>} */
  const table = new Map();
  /** @type {Map<string, number>} */
  const colourCache = new Map();
  const intern = (/** @type {string} */ s) => {
    let id = table.get(s);
    if (id === undefined) {
      id = f.strings.length;
      f.strings.push(s);
      table.set(s, id);
    }
    return id;
  };
  // explicit stack as parallel arrays (trees can be deeper than the call stack)
  /** @type {TreeNode[]} */
  const sNode = [root];
  const sParent = [-1];
  const sDepth = [0];
  const sStart = [0];
  /** @type {number[]} open nodes, to set `end` */
  const open = [];
  let i = 0;
  while (sNode.length) {
    const node = /** @type {TreeNode} */ (sNode.pop());
    const parent = /** @type {number} */ (sParent.pop());
    const depth = /** @type {number} */ (sDepth.pop());
    const start = /** @type {number} */ (sStart.pop());
    while (open.length && f.depth[open[open.length - 1]] >= depth) f.end[/** @type {number} */ (open.pop())] = i;
    const file = node.file ?? "";
    f.nodes[i] = node;
    f.name[i] = intern(node.name);
    f.file[i] = intern(file);
    f.line[i] = node.line ?? 0;
    f.depth[i] = depth;
    f.parent[i] = parent;
    f.start[i] = start;
    f.total[i] = value(node);
    f.self[i] = selfOf(node);
    if (options.colour) f.colour[i] = options.colour(node);
    else {
      let c = colourCache.get(file);
      if (c === undefined) {
        c = colourIndex(file);
        colourCache.set(file, c);
      }
      f.colour[i] = c;
    }
    if (depth > f.maxDepth) f.maxDepth = depth;
    open.push(i);
    const children = node.children;
    if (children && children.length) {
      // push right to left so the leftmost child is visited first; offsets from the right end
      let offset = start;
      for (let k = 0; k < children.length; k += 1) offset += value(children[k]);
      for (let k = children.length - 1; k >= 0; k -= 1) {
        const child = children[k];
        offset -= value(child);
        sNode.push(child);
        sParent.push(i);
        sDepth.push(depth + 1);
        sStart.push(offset);
      }
    }
    i += 1;
  }
  while (open.length) f.end[/** @type {number} */ (open.pop())] = count;
  return f;
}

/** @param {TreeNode} root */
function countNodes(root) {
  let n = 0;
  const stack = [root];
  while (stack.length) {
    const node = /** @type {TreeNode} */ (stack.pop());
    n += 1;
    for (const c of node.children ?? []) stack.push(c);
  }
  return n;
}

/**
 * @param {number} count
 * @returns {Flame}
 */
function allocate(count) {
  return {
    count,
    maxDepth: 0,
    strings: [],
    name: new Int32Array(count),
    file: new Int32Array(count),
    line: new Int32Array(count),
    depth: new Uint16Array(count),
    parent: new Int32Array(count),
    end: new Int32Array(count),
    start: new Float64Array(count),
    total: new Float64Array(count),
    self: new Float64Array(count),
    colour: new Uint16Array(count),
    nodes: new Array(count),
  };
}

/**
 * A node's function name.
 * @param {Flame} f
 * @param {number} i
 */
export function nameOf(f, i) {
  return f.strings[f.name[i]];
}

/**
 * A node's file.
 * @param {Flame} f
 * @param {number} i
 */
export function fileOf(f, i) {
  return f.strings[f.file[i]];
}

/**
 * The key that identifies a node among its siblings in a `zoom` path: the name, and
 * `:line` when frames are split by line.
 * @param {Flame} f
 * @param {number} i
 */
export function frameKey(f, i) {
  return f.line[i] ? `${nameOf(f, i)}:${f.line[i]}` : nameOf(f, i);
}

/**
 * Nodes from the root down to `i`, inclusive.
 * @param {Flame} f
 * @param {number} i
 * @returns {number[]}
 */
export function ancestry(f, i) {
  const out = [];
  for (let k = i; k >= 0; k = f.parent[k]) out.push(k);
  return out.reverse();
}

/**
 * The zoom path of node `i`: frame keys below the root.
 * @param {Flame} f
 * @param {number} i
 * @returns {string[]}
 */
export function pathOf(f, i) {
  return ancestry(f, i)
    .slice(1)
    .map((k) => frameKey(f, k));
}

/**
 * The node a path of frame keys leads to, or the deepest prefix that still exists
 * (the root for an empty path). Among same-key siblings the widest wins.
 * @param {Flame} f
 * @param {string[]} keys
 * @returns {number}
 */
export function findPath(f, keys) {
  let cur = 0;
  for (const key of keys) {
    let next = -1;
    for (let c = cur + 1; c < f.end[cur]; c = f.end[c]) {
      if (frameKey(f, c) === key) {
        next = c;
        break;
      }
    }
    if (next < 0) break;
    cur = next;
  }
  return cur;
}

/**
 * A predicate over function names for a search box: `/regex/flags` as a regular
 * expression, otherwise a case-insensitive substring. Empty or invalid: `null`.
 * @param {string} query
 * @returns {((name: string) => boolean) | null}
 */
export function makeMatcher(query) {
  const q = query.trim();
  if (!q) return null;
  const re = q.match(/^\/(.+)\/([a-z]*)$/);
  if (re) {
    try {
      const rx = new RegExp(re[1], re[2].replace(/[gy]/g, ""));
      return (name) => rx.test(name);
    } catch {
      return null;
    }
  }
  const needle = q.toLowerCase();
  return (name) => name.toLowerCase().includes(needle);
}

/**
 * Marks the nodes whose function satisfies `test`.
 * @param {Flame} f
 * @param {(name: string, file: string, line: number) => boolean} test
 * @returns {Uint8Array} 1 for a match
 */
export function markMatches(f, test) {
  const out = new Uint8Array(f.count);
  /** @type {Map<number, boolean>} string pairs repeat: cache per (name, file) when no line */
  const cache = new Map();
  for (let i = 0; i < f.count; i += 1) {
    const key = f.line[i] ? -1 : f.name[i] * 1e6 + f.file[i];
    let hit = key >= 0 ? cache.get(key) : undefined;
    if (hit === undefined) {
      hit = test(nameOf(f, i), fileOf(f, i), f.line[i]);
      if (key >= 0) cache.set(key, hit);
    }
    out[i] = hit ? 1 : 0;
  }
  return out;
}

/**
 * Value covered by matching nodes within node `within`'s subtree, counting a match
 * nested inside another match once, and the number of matching nodes.
 * @param {Flame} f
 * @param {Uint8Array} matches
 * @param {number} [within] subtree root (default the root)
 * @returns {{value: number, nodes: number}}
 */
export function matchedValue(f, matches, within = 0) {
  let value = 0;
  let nodes = 0;
  let coveredUntil = -1;
  for (let i = within; i < f.end[within]; i += 1) {
    if (!matches[i]) continue;
    nodes += 1;
    if (i >= coveredUntil) {
      value += f.total[i];
      coveredUntil = f.end[i];
    }
  }
  return { value, nodes };
}

/**
 * Outermost matching nodes (none inside another match), in preorder.
 * @param {Flame} f
 * @param {Uint8Array} matches
 * @returns {number[]}
 */
export function outermost(f, matches) {
  const out = [];
  for (let i = 0; i < f.count; i += 1) {
    if (matches[i]) {
      out.push(i);
      i = f.end[i] - 1;
    }
  }
  return out;
}

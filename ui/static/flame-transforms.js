/**
 * Pure transformations of a flattened profile into trees for other views: the sandwich
 * (callers and callees of one function) and the diff of two profiles (normalised shares).
 * Their results are plain trees that {@link module:flame-model.flattenTree} draws like any
 * profile.
 * @module flame-transforms
 */

import { diffColourIndex } from "./colour.js";
import { fileOf, flattenTree, frameKey, nameOf, outermost } from "./flame-model.js";

/**
 * @typedef {import("./flame-model.js").Flame} Flame
 * @typedef {import("./flame-model.js").TreeNode} TreeNode
 */

/**
 * @typedef {Object} MutableNode
 * @property {string} name
 * @property {string} file
 * @property {number} [line]
 * @property {number} self
 * @property {number} total
 * @property {MutableNode[]} children
 * @property {Map<string, MutableNode>} [index]
 */

/**
 * @param {Flame} f
 * @param {number} i
 * @returns {MutableNode}
 */
function emptyLike(f, i) {
  /** @type {MutableNode} */
  const n = { name: nameOf(f, i), file: fileOf(f, i), self: 0, total: 0, children: [] };
  if (f.line[i]) n.line = f.line[i];
  return n;
}

/**
 * @param {MutableNode} parent
 * @param {Flame} f
 * @param {number} i
 */
function childFor(parent, f, i) {
  if (!parent.index) parent.index = new Map();
  const key = `${frameKey(f, i)}\u0000${fileOf(f, i)}`;
  let child = parent.index.get(key);
  if (!child) {
    child = emptyLike(f, i);
    parent.index.set(key, child);
    parent.children.push(child);
  }
  return child;
}

/**
 * Sorts children by total (largest first) and drops the lookup maps, iteratively.
 * @param {MutableNode} root
 * @returns {TreeNode}
 */
function finish(root) {
  const stack = [root];
  while (stack.length) {
    const n = /** @type {MutableNode} */ (stack.pop());
    delete n.index;
    n.children.sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
    for (const c of n.children) stack.push(c);
  }
  return root;
}

/**
 * The sandwich of the function(s) `matches` marks: `callers`, a tree rooted at the
 * function whose children are its callers (inverted: each level one caller further out),
 * and `callees`, the merged subtrees below it. Both roots' totals are the value of the
 * outermost occurrences, so recursion is counted once.
 * @param {Flame} f
 * @param {Uint8Array} matches
 * @returns {{callers: TreeNode, callees: TreeNode, total: number, occurrences: number} | null}
 */
export function sandwich(f, matches) {
  const tops = outermost(f, matches);
  if (!tops.length) return null;
  const callers = emptyLike(f, tops[0]);
  const callees = emptyLike(f, tops[0]);
  for (const o of tops) {
    const v = f.total[o];
    callers.total += v;
    callees.total += v;
    callees.self += f.self[o];
    // callers: walk up to (not including) the synthetic root
    let cur = callers;
    let p = f.parent[o];
    if (p <= 0) cur.self += v;
    for (; p > 0; p = f.parent[p]) {
      cur = childFor(cur, f, p);
      cur.total += v;
      if (f.parent[p] <= 0) cur.self += v;
    }
    // callees: merge o's subtree below o, keeping the merged node per source node
    /** @type {Array<[number, MutableNode]>} */
    const stack = [];
    for (let c = o + 1; c < f.end[o]; c = f.end[c]) stack.push([c, callees]);
    while (stack.length) {
      const [i, into] = /** @type {[number, MutableNode]} */ (stack.pop());
      const node = childFor(into, f, i);
      node.total += f.total[i];
      node.self += f.self[i];
      for (let c = i + 1; c < f.end[i]; c = f.end[c]) stack.push([c, node]);
    }
  }
  return { callers: finish(callers), callees: finish(callees), total: callers.total, occurrences: tops.length };
}

/**
 * @typedef {Object} DiffNode
 * @property {string} name
 * @property {string} [file]
 * @property {number} base_self
 * @property {number} base_total
 * @property {number} comparison_self
 * @property {number} comparison_total
 * @property {DiffNode[]} [children]
 */

/**
 * Flattens a diff tree. Each profile is normalised to its own total, a frame's width is
 * the mean of its two shares, and its colour is the change of its share.
 * @param {DiffNode} root
 * @param {number} baseTotal
 * @param {number} comparisonTotal
 * @returns {Flame}
 */
export function flattenDiff(root, baseTotal, comparisonTotal) {
  const bt = baseTotal || 1;
  const ct = comparisonTotal || 1;
  const share = (/** @type {any} */ n, /** @type {string} */ which) =>
    ((n[`base_${which}`] ?? 0) / bt + (n[`comparison_${which}`] ?? 0) / ct) / 2;
  return flattenTree(/** @type {TreeNode} */ (/** @type {unknown} */ (root)), {
    value: (n) => share(n, "total"),
    self: (n) => share(n, "self"),
    colour: (n) => {
      const d = /** @type {DiffNode} */ (/** @type {unknown} */ (n));
      return diffColourIndex((d.base_total ?? 0) / bt, (d.comparison_total ?? 0) / ct);
    },
  });
}

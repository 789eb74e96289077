/**
 * The JSON API client: same-origin `fetch` only, errors as {@link ApiError} carrying the
 * server's own message, and what the server offers read from its OpenAPI schema, so a
 * view whose endpoint this server lacks can say so instead of failing.
 * @module api
 */

/**
 * An API call failed: `status` is the HTTP status, 0 when the server was not reached,
 * -1 when the server's schema says it has no such endpoint (nothing was requested).
 */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string} path
   */
  constructor(status, message, path) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.path = path;
  }
}

/**
 * A URL for an API path with the non-empty parameters.
 * @param {string} path e.g. `/api/v1/top`
 * @param {Record<string, string | number | undefined | null>} [params]
 * @returns {string}
 */
export function apiUrl(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * GETs JSON from the API.
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} [params]
 * @param {AbortSignal} [signal]
 * @returns {Promise<any>}
 */
export async function getJson(path, params = {}, signal) {
  const url = apiUrl(path, params);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, signal });
  } catch (err) {
    if (/** @type {Error} */ (err).name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the server: ${/** @type {Error} */ (err).message}`, path);
  }
  const text = await response.text();
  /** @type {any} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message =
      (body && typeof body.error === "string" && body.error) ||
      (body && typeof body.detail === "string" && body.detail) ||
      text.slice(0, 300) ||
      response.statusText;
    throw new ApiError(response.status, message, path);
  }
  if (body === null) throw new ApiError(response.status, `${path} did not return JSON`, path);
  return body;
}

/**
 * What this server's API offers, from `/openapi.json`: paths and their query parameters.
 */
export class Capabilities {
  /** @param {Record<string, any> | null} schema the OpenAPI document, or null if unreadable */
  constructor(schema) {
    /** @type {Map<string, Set<string>> | null} null: unknown, assume everything exists */
    this.paths = null;
    if (schema && schema.paths) {
      this.paths = new Map();
      for (const [path, item] of Object.entries(schema.paths)) {
        const get = /** @type {any} */ (item).get;
        if (!get) continue;
        const names = new Set((get.parameters ?? []).map((/** @type {any} */ p) => p.name));
        this.paths.set(path, names);
      }
    }
  }

  /**
   * Whether the server has `GET path` (and, if given, its query parameter `param`).
   * @param {string} path
   * @param {string} [param]
   */
  has(path, param) {
    if (!this.paths) return true;
    const params = this.paths.get(path);
    if (!params) return false;
    return param ? params.has(param) : true;
  }

  /**
   * Rejects with an in-page explanation when the server lacks `path`.
   * @param {string} path
   * @param {string} [param]
   */
  require(path, param) {
    if (this.has(path, param)) return;
    const what = param ? `the \`${param}\` parameter of GET ${path}` : `GET ${path}`;
    throw new ApiError(-1, `this server's API has no ${what} (see /docs); upgrade the server to use this view`, path);
  }
}

/** @type {Promise<Capabilities> | null} */
let capabilities = null;

/**
 * The server's capabilities, read once per page.
 * @returns {Promise<Capabilities>}
 */
export function getCapabilities() {
  if (!capabilities) {
    capabilities = getJson("/openapi.json").then(
      (schema) => new Capabilities(schema),
      () => new Capabilities(null),
    );
  }
  return capabilities;
}

/**
 * A small cache of GET results, keyed by URL, so switching views does not re-query.
 * Cleared when the user re-runs a query.
 */
export class ResultCache {
  constructor(limit = 16) {
    this.limit = limit;
    /** @type {Map<string, Promise<any>>} */
    this.entries = new Map();
  }

  /**
   * @param {string} path
   * @param {Record<string, string | number | undefined | null>} params
   * @returns {Promise<any>}
   */
  get(path, params) {
    const key = apiUrl(path, params);
    const hit = this.entries.get(key);
    if (hit) return hit;
    const p = getJson(path, params);
    this.entries.set(key, p);
    p.catch(() => this.entries.delete(key));
    while (this.entries.size > this.limit) {
      const first = this.entries.keys().next().value;
      if (first === undefined) break;
      this.entries.delete(first);
    }
    return p;
  }

  clear() {
    this.entries.clear();
  }
}

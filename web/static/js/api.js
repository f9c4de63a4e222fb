// Talking to /api/v1. Errors come back as RFC 9457 problem documents
// ({code, detail, params, errors: [{field, code, params}]}); they surface
// here as ApiProblem so forms can put each one, in words, by its field.

import { noteServerDate } from './clock.js';

export class ApiProblem extends Error {
  constructor(status, body = {}) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || (status === 0 ? 'network' : 'generic');
    this.detail = body.detail || '';
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    // The numbers a sentence about this problem needs (e.g. `available`).
    this.params = body.params && typeof body.params === 'object' ? body.params : {};
    this.retryAfter = Number(body.retryAfter) || 0;
  }
}

/** Reads a problem document (or anything else) from a failed response. */
export async function problemFrom(res) {
  let body = {};
  const type = res.headers.get('content-type') || '';
  if (type.includes('json')) {
    try { body = await res.json(); } catch (_) { body = {}; }
  }
  body.retryAfter = res.headers.get('retry-after');
  return new ApiProblem(res.status, body);
}

/**
 * One request. `headers` adds request headers (e.g. Idempotency-Key).
 * Every answer's Date header corrects the page's clock for countdowns.
 */
export async function api(method, path, body, { headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (_) {
    throw new ApiProblem(0, { code: 'network' });
  }
  noteServerDate(res.headers.get('date'));
  if (!res.ok) throw await problemFrom(res);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path) => api('GET', path);
export const post = (path, body, options) => api('POST', path, body ?? {}, options);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

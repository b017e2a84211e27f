// The console's only HTTP client. Same origin: the session cookie authenticates every call.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  // The server answered, but it has no such endpoint (an older or partial deployment).
  get unavailable() {
    return this.status === 405 || (this.status === 404 && this.code === 'endpoint_missing');
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy page or an empty body
  }
  const err = (body && body.error) || {};
  // The router's own 404 for an unknown path says just "Not Found"; rdev's own 404s name
  // what is missing. The first means this server has no such endpoint.
  const routeMissing = response.status === 404 && (err.message === 'Not Found' || (body && body.detail === 'Not Found'));
  const code = routeMissing ? 'endpoint_missing' : err.code || 'http_error';
  const message = err.message || `${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, code, message, err.details);
}

export async function request(method, path, { body, query } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, v);
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (exc) {
    throw new ApiError(0, 'unreachable', 'The rdev server cannot be reached. Check the connection and try again.');
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body, query) => request('POST', path, { body, query });
export const del = (path) => request('DELETE', path);

// Fetch a body as a Blob (log download), with the same error handling.
export async function blob(path) {
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'unreachable', 'The rdev server cannot be reached.');
  }
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

export const enc = encodeURIComponent;

// The server's HTTP API (docs/api.md) as the dashboard calls it.
//
// The token, once given in the login form, is kept in this tab's
// sessionStorage only (it goes when the tab closes) and travels with every
// call as an Authorization header: never in a URL, never in localStorage.
// A server without a token takes calls without one.

const TOKEN_KEY = 'ferry.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An answer that was not 2xx: `code` is the API's error code
// ("unauthorized", "not_found", ...), `detail` its sentence.
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

let unauthorized = () => {};
// `handler` runs whenever the server refuses the token (401).
export function onUnauthorized(handler) {
  unauthorized = handler;
}
export function refused(error) {
  unauthorized(error);
}

export function authorization(value = token()) {
  return value ? { Authorization: `Bearer ${value}` } : {};
}

// Calls the API; resolves to the parsed JSON answer, or throws an ApiError.
export async function call(method, path, body, { signal, tokenToTry } = {}) {
  const headers = authorization(tokenToTry ?? token());
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (problem) {
    if (problem.name === 'AbortError') throw problem;
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, json?.error ?? 'http', json?.detail ?? text);
    if (response.status === 401 && tokenToTry === undefined) unauthorized(error);
    throw error;
  }
  return json;
}

export const get = (path, options) => call('GET', path, undefined, options);
export const post = (path, body, options) => call('POST', path, body, options);

// A query string from an object, leaving out empty values.
export function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters))
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

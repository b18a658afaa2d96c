// The management API client. The session is the `token` cookie the login sets (HttpOnly,
// SameSite=Strict), so requests only need to be same-origin.

/** An error reply from the API, with its status and message. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Calls the API; resolves with the parsed JSON body, rejects with an ApiError. */
export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The gateway could not be reached (${e.message}).`);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const message = parsed?.error?.message || parsed?.message || `${response.status} ${response.statusText}`;
    if (response.status === 401 && !path.startsWith('/session/')) window.dispatchEvent(new CustomEvent('asbru:unauthorized'));
    throw new ApiError(response.status, message, parsed);
  }
  return parsed;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** A query string from an object, skipping empty values; arrays are comma-joined. */
export function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length)) continue;
    const text = Array.isArray(value) ? value.join(',') : String(value);
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(text)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Percent-encodes one path segment. */
export const seg = (s) => encodeURIComponent(s);

/** Every virtual key, page by page (the API returns at most 100 at a time). */
export async function allVirtualKeys({ fromMemory = false } = {}) {
  const keys = [];
  for (let offset = 0; offset < 100000; offset += 100) {
    const reply = await get(`/governance/virtual-keys${query({ from_memory: fromMemory ? 'true' : '', limit: 100, offset })}`);
    const page = reply.virtual_keys || [];
    keys.push(...page);
    if (!page.length || keys.length >= (reply.total_count ?? 0)) break;
  }
  return keys;
}

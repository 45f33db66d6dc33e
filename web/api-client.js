// Talking to the API: JSON requests with the API key in use, and problem+json answers as
// errors. Paths are relative ('api/tasks'), so they resolve under the page's <base>: the
// dashboard works wherever the service is mounted.

/** Where the API key is kept: for this browser session only, shared with /docs. */
const KEY_STORAGE = 'taskstream.api-key';

export function readStoredKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null; // storage disabled: the key lasts as long as the page
  }
}

export function storeKey(key) {
  try {
    if (key === null) sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // storage disabled: see readStoredKey
  }
}

/** An error answer (or no answer: status 0), with the problem's field errors. */
export class Problem extends Error {
  constructor(body, status) {
    super(body?.detail || body?.title || `The service answered ${status}`);
    this.status = status;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

/** A 401: the key form is showing, so the page says nothing more about it. */
export const isUnauthorized = (error) => error?.status === 401;

export class ApiClient {
  /** The key sent as `Authorization: Bearer`, or null: the service needs none, or none is known yet. */
  key;
  #onUnauthorized;

  /** `onUnauthorized(message)` is told when the service refuses the key in use (or asks for one). */
  constructor({ key = null, onUnauthorized }) {
    this.key = key;
    this.#onUnauthorized = onUnauthorized;
  }

  /**
   * Sends a request with the key in use (or `key`) and answers `{ json, response }`; throws a
   * Problem for an error status. A 401 to the key in use asks for another; a 401 to any other
   * key (one being tried, or one replaced meanwhile) is left to the caller.
   */
  async request(path, { method = 'GET', body, key = this.key } = {}) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key) headers.authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new Problem({ detail: 'Could not reach the service. Is it running?' }, 0);
    }
    if (response.status === 204) return { json: null, response };
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below by status
    }
    if (!response.ok) {
      if (response.status === 401 && key === this.key) {
        this.#onUnauthorized(key ? 'The service no longer accepts the saved key. Enter a key to go on.' : null);
      }
      throw new Problem(json, response.status);
    }
    return { json, response };
  }

  /** The JSON body of a request's answer. */
  async json(path, options) {
    return (await this.request(path, options)).json;
  }
}

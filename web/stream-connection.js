// The all-tasks stream: one EventSource on api/events for every task, with its reconnects,
// back-off and, when an API key is in use, the stream tokens it opens with (EventSource sends
// no headers). The timing rules are pure functions, tested without a browser.

import { isUnauthorized } from './api-client.js';

export const TASK_EVENTS = [
  'task_created',
  'task_started',
  'progress_update',
  'task_completed',
  'task_failed',
  'task_cancelled',
  'task_removed',
];
export const RECONNECT_MIN_MS = 1000;
export const RECONNECT_MAX_MS = 15000;
/** A stream token is renewed once this share of its lifetime has passed. */
const TOKEN_RENEW_AT = 0.8;
const TOKEN_RENEW_MIN_MS = 1000;
const TOKEN_RENEW_RETRY_MS = 30000;
const CLOCK_TOLERANCE_MS = 2000;
/** setTimeout cannot wait longer than 2^31 - 1 ms. */
const MAX_TIMER_MS = 2147483647;

/** The back-off after `delayMs`: doubled, up to RECONNECT_MAX_MS. */
export const nextReconnectDelayMs = (delayMs) => Math.min(delayMs * 2, RECONNECT_MAX_MS);

/** When to open a stream with a new token: once most of this one's lifetime has passed. */
export const renewalDelayMs = (lifetimeMs) => Math.min(MAX_TIMER_MS, Math.max(TOKEN_RENEW_MIN_MS, lifetimeMs * TOKEN_RENEW_AT));

/**
 * A token's lifetime from its `expires_at`, which is by the server's clock. The answer's Date
 * header has whole seconds only, so it stands in for our clock (`localNow`) only when ours is
 * clearly wrong.
 */
export function tokenLifetimeMs(expiresAt, dateHeader, localNow) {
  const serverDate = Date.parse(dateHeader ?? '');
  const now = Number.isFinite(serverDate) && Math.abs(serverDate - localNow) > CLOCK_TOLERANCE_MS ? serverDate : localNow;
  return Date.parse(expiresAt) - now;
}

/**
 * The URL to open a minted stream at: its stream_url (which names the mount path), plus the
 * resume point, as a new EventSource does not carry Last-Event-ID over from the last one.
 */
export function resumeUrl(streamUrl, lastEventId, baseUrl) {
  const url = new URL(streamUrl, baseUrl);
  if (lastEventId) url.searchParams.set('last_event_id', lastEventId);
  return url.pathname + url.search;
}

/**
 * One EventSource for every task. It reconnects by itself after a network error (resuming
 * with Last-Event-ID); after an answer that ends it for good (such as a 503 while the service
 * restarts, or a 401 for an expired token) a new one is opened after a back-off, with a new
 * token when a key is in use.
 *
 * Handlers: `state(state, text)` (connecting, live, reconnecting, offline), `event(event)` for
 * each task event, `open(reload)` when a stream opens (reload: the list may have missed
 * events), `resync()` when the resume point is older than the service keeps.
 */
export class StreamConnection {
  #api;
  #on;
  #source = null;
  #reconnectTimer = undefined;
  #reconnectDelayMs = RECONNECT_MIN_MS;
  #renewTimer = undefined;
  /** Bumped by every connect and stop: a token minted for an older one is not used. */
  #generation = 0;
  /** The `id:` of the last stream event: where a stream opened with a new token resumes. */
  #lastEventId = '';

  constructor(api, handlers) {
    this.#api = api;
    this.#on = handlers;
  }

  /** Stops the stream and any reconnect or renewal on its way. */
  stop() {
    this.#generation++;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#renewTimer);
    this.#source?.close();
    this.#source = null;
  }

  /** The next stream starts from now, not after the last event seen (the list starts over). */
  forgetResumePoint() {
    this.#lastEventId = '';
  }

  /** Opens the stream anew, minting a token first when a key is in use. */
  async connect() {
    this.stop();
    const generation = this.#generation;
    this.#on.state('connecting', 'Connecting…');
    let url = 'api/events';
    if (this.#api.key) {
      let minted;
      try {
        minted = await this.#mint();
      } catch (error) {
        if (generation !== this.#generation || isUnauthorized(error)) return; // the key form took over
        this.#retryLater();
        return;
      }
      if (generation !== this.#generation) return;
      url = minted.url;
      this.#scheduleRenewal(minted.lifetimeMs);
    }
    this.#open(url);
  }

  /** A stream token for every task of the key's owner, with the URL to open. */
  async #mint() {
    const { json: minted, response } = await this.#api.request('api/stream-tokens', { method: 'POST' });
    const lifetimeMs = tokenLifetimeMs(minted.expires_at, response.headers.get('date'), Date.now());
    return { url: resumeUrl(minted.stream_url, this.#lastEventId, document.baseURI), lifetimeMs };
  }

  #scheduleRenewal(lifetimeMs) {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => this.#renew(), renewalDelayMs(lifetimeMs));
  }

  /**
   * Replaces the open stream by one with a fresh token before the token runs out, so that
   * EventSource's own reconnects (which reuse its URL) keep working. It resumes after the last
   * event, with no gap and no duplicate, so the list needs no reload.
   */
  async #renew() {
    const current = this.#source;
    const generation = this.#generation;
    let minted;
    try {
      minted = await this.#mint();
    } catch (error) {
      // A 401 has asked for a key already; otherwise this token still works for a while.
      if (!isUnauthorized(error) && generation === this.#generation) {
        this.#renewTimer = setTimeout(() => this.#renew(), TOKEN_RENEW_RETRY_MS);
      }
      return;
    }
    if (generation !== this.#generation || current !== this.#source) return; // replaced meanwhile
    this.#open(minted.url, { reloadOnOpen: false });
    this.#scheduleRenewal(minted.lifetimeMs);
  }

  #retryLater() {
    const delay = this.#reconnectDelayMs;
    this.#reconnectDelayMs = nextReconnectDelayMs(delay);
    this.#on.state('offline', `Offline — retrying in ${Math.round(delay / 1000)} s`);
    this.#reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Opens `url` as the stream, closing the one before. `reloadOnOpen: false` skips its first reload. */
  #open(url, { reloadOnOpen = true } = {}) {
    this.#source?.close();
    const current = new EventSource(url);
    this.#source = current;
    let reload = reloadOnOpen;
    current.addEventListener('open', () => {
      if (current !== this.#source) return;
      this.#reconnectDelayMs = RECONNECT_MIN_MS;
      this.#on.state('live', 'Live');
      this.#on.open(reload);
      reload = true; // EventSource's own reconnects reload, as they always have
    });
    current.addEventListener('error', () => {
      if (current !== this.#source) return;
      if (current.readyState === EventSource.CLOSED) {
        clearTimeout(this.#renewTimer);
        // Without a key, a refused stream may mean the service now wants one: a request that
        // can say so (401) finds out, and asks for the key.
        if (!this.#api.key) this.#api.request('api/tasks/stats').catch(() => {});
        this.#retryLater();
      } else {
        this.#on.state('reconnecting', 'Reconnecting…');
      }
    });
    const onMessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (message.lastEventId) this.#lastEventId = message.lastEventId;
      this.#on.event(event);
    };
    for (const type of TASK_EVENTS) current.addEventListener(type, onMessage);
    // The resume point is older than the server keeps: start over from a fresh list.
    current.addEventListener('resync', () => current === this.#source && this.#on.resync());
  }

  /** Closes the stream as the page goes away. */
  close() {
    this.#source?.close();
  }
}

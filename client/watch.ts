import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { components } from './schema.d.ts';

type Schemas = components['schemas'];
export type TaskEvent = Schemas['TaskEvent'];
/** What the multiplexed stream carries: task events, plus task_created and task_removed. */
export type StreamEvent = Schemas['StreamEvent'];
/** Events after the resume point were no longer retained: reload what you show, then carry on. */
export interface ResyncEvent {
  event_type: 'resync';
}

/** An answer that is not a stream: `problem` is the body (application/problem+json). */
export class WatchError extends Error {
  override readonly name = 'WatchError';
  constructor(
    readonly status: number,
    readonly problem: Schemas['Problem'] | undefined,
  ) {
    super(problem ? `${status} ${problem.code}: ${problem.detail ?? problem.title}` : `the stream answered ${status}`);
  }
}

export interface StreamSource {
  baseUrl: string;
  fetch: typeof fetch;
  apiKey?: string | undefined;
  streamToken?: string | undefined;
  /** Wait before reconnecting when the server gave no `retry:` hint. */
  reconnectDelayMs: number;
  /** Consecutive failed connections (network errors, 5xx) after which watching gives up. */
  maxReconnects: number;
}

export interface WatchOptions {
  /** Resume after this event id (a seq for a task's stream, a position for the multiplexed one). */
  after?: number | string;
  /** Stops watching; the iterator then ends. */
  signal?: AbortSignal;
  /** A stream token for this stream, instead of the client's own credentials. */
  streamToken?: string;
}

const TERMINAL = new Set(['task_completed', 'task_failed', 'task_cancelled']);
const RETRYABLE_STATUS = (status: number) => status >= 500 || status === 429;

/**
 * Reads one SSE endpoint as an async iterator of parsed events: reconnects after a dropped
 * connection with `Last-Event-ID` set to the last event seen, so the server resumes after
 * it (no gap, no duplicate); ends after `isLast(event)`, when the server answers 204
 * (nothing more will come), or when `signal` aborts.
 */
export async function* followStream<E>(
  source: StreamSource,
  path: string,
  query: URLSearchParams,
  { after, signal, streamToken }: WatchOptions,
  isLast: (event: E) => boolean,
): AsyncGenerator<E> {
  let lastEventId = after === undefined ? undefined : String(after);
  let retryMs = source.reconnectDelayMs;
  let failures = 0;
  const token = streamToken ?? source.streamToken;
  if (token !== undefined) query.set('token', token);
  const url = `${source.baseUrl.replace(/\/+$/, '')}${path}${query.size > 0 ? `?${query}` : ''}`;

  while (!signal?.aborted) {
    const connection = new AbortController();
    const stop = () => connection.abort();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (source.apiKey !== undefined && token === undefined) headers.authorization = `Bearer ${source.apiKey}`;
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
      let response: Response;
      try {
        response = await source.fetch(url, { headers, signal: connection.signal });
      } catch (error) {
        if (signal?.aborted) return;
        if (++failures > source.maxReconnects) throw error;
        await delay(retryMs, signal);
        continue;
      }
      if (response.status === 204) return;
      if (!response.ok || !response.body) {
        const problem = (await response.json().catch(() => undefined)) as Schemas['Problem'] | undefined;
        if (RETRYABLE_STATUS(response.status) && ++failures <= source.maxReconnects) {
          await delay(retryMs, signal);
          continue;
        }
        throw new WatchError(response.status, problem);
      }
      failures = 0;

      const queue: EventSourceMessage[] = [];
      const parser = createParser({
        onEvent: (message) => queue.push(message),
        onRetry: (ms) => (retryMs = ms),
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let dropped = false;
      let received = 0;
      try {
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch {
            dropped = true; // the connection broke: reconnect below
            break;
          }
          if (chunk.done) break;
          parser.feed(decoder.decode(chunk.value, { stream: true }));
          for (const message of queue.splice(0)) {
            if (message.id !== undefined) lastEventId = message.id;
            const event = (message.event === 'resync' ? { event_type: 'resync' } : JSON.parse(message.data)) as E;
            received++;
            yield event;
            if (isLast(event)) return;
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
      // The response ended or broke before the last event: resume after what was seen. An
      // orderly end (a chosen set of tasks has ended) reconnects at once, to get its 204.
      if (signal?.aborted) return;
      if (dropped || received === 0) {
        // An answer that ends with nothing in it must not turn into a busy loop.
        if (!dropped && ++failures > source.maxReconnects) throw new WatchError(response.status, undefined);
        await delay(retryMs, signal);
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      connection.abort();
    }
  }
}

/** A task's stream: ends after its terminal event. */
export function watchTask(source: StreamSource, taskId: string, options: WatchOptions = {}): AsyncGenerator<TaskEvent> {
  return followStream<TaskEvent>(
    source,
    `/api/tasks/${encodeURIComponent(taskId)}/events`,
    new URLSearchParams(),
    options,
    (event) => TERMINAL.has(event.event_type),
  );
}

/**
 * The multiplexed stream: with `taskIds`, those tasks' events, ending once each has ended;
 * without, every task's events (and task_created, task_removed, resync) until `signal` aborts.
 */
export function watchAllTasks(
  source: StreamSource,
  { taskIds, ...options }: WatchOptions & { taskIds?: readonly string[] } = {},
): AsyncGenerator<StreamEvent | ResyncEvent> {
  const query = new URLSearchParams((taskIds ?? []).map((taskId): [string, string] => ['task_id', taskId]));
  // The server ends a chosen set's stream after the last terminal event and answers the
  // reconnect with 204, which ends the iterator.
  return followStream<StreamEvent | ResyncEvent>(source, '/api/events', query, options, () => false);
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

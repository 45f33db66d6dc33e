import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { withTimeout } from './timeout.ts';

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
  /** `data` parsed as JSON. */
  json: any;
}

/**
 * A test SSE client over fetch: exposes the response status and headers, collects every
 * event, comment and retry hint, and tells when the server ended the stream.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  response!: Response;
  /** Resolves when the server ends the response (or the client aborts). */
  ended!: Promise<void>;
  readonly #abort = new AbortController();
  #waiters: (() => void)[] = [];

  static async connect(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    client.response = await withTimeout(
      fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: client.#abort.signal }),
      `response headers from ${url}`,
    );
    client.ended = client.#read();
    return client;
  }

  async #read(): Promise<void> {
    const body = this.response.body;
    if (!body || this.response.status !== 200) return;
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        this.events.push({
          id: message.id,
          event: message.event,
          data: message.data,
          json: safeJson(message.data),
        });
        this.#notify();
      },
      onComment: (comment) => {
        this.comments.push(comment);
        this.#notify();
      },
      onRetry: (retry) => (this.retry = retry),
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch (error) {
      if (!this.#abort.signal.aborted) throw error;
    } finally {
      this.#notify();
    }
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** Waits until `predicate` holds over the events received so far. */
  async waitFor(predicate: (events: SseEvent[]) => boolean, label: string, ms = 10_000): Promise<SseEvent[]> {
    let done = false;
    const ended = this.ended.then(() => (done = true));
    await withTimeout(
      (async () => {
        while (!predicate(this.events)) {
          if (done) throw new Error(`stream ended before ${label}; got ${this.types().join(', ')}`);
          await Promise.race([new Promise<void>((resolve) => this.#waiters.push(resolve)), ended]);
        }
      })(),
      label,
      ms,
    );
    return this.events;
  }

  /** Waits for the server to end the stream, then returns every event. */
  async untilEnd(label = 'the stream to end', ms = 10_000): Promise<SseEvent[]> {
    await withTimeout(this.ended, label, ms);
    return this.events;
  }

  types(): string[] {
    return this.events.map((event) => event.event ?? 'message');
  }

  close(): void {
    this.#abort.abort();
  }
}

function safeJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { describe } from './api.ts';

/** One SSE frame as received. */
export interface Frame {
  /** The `id:` field as a number (a per-task seq or a service-wide position); NaN if absent. */
  id: number;
  event: string;
  data: any;
}

export type SessionEnd =
  /** The server ended the response. */
  | 'server'
  /** We dropped the connection (`drop()`). */
  | 'dropped'
  /** The connection failed under us. */
  | 'error'
  /** No stream: the answer was not 200. */
  | 'refused';

export interface SessionOptions {
  /** Resume after this id: as the Last-Event-ID header, or as the last_event_id query parameter. */
  resume?: { after: number; by: 'header' | 'query' };
  /** Called for each frame, in order; may call `drop()`. */
  onFrame: (frame: Frame, session: SseSession) => void;
}

/** One connection to an event stream, read until the server ends it or we drop it. */
export class SseSession {
  status = 0;
  /** Why the session ended, once `ended` resolved. */
  end: SessionEnd | undefined;
  /** A failure's message, when `end` is `error`. */
  error: string | undefined;
  readonly ended: Promise<SessionEnd>;
  /** Resolves with the status once the answer's headers arrived (0 if none did). */
  readonly opened: Promise<number>;
  #onOpened!: (status: number) => void;
  readonly #abort = new AbortController();
  #dropped = false;

  constructor(baseUrl: string, path: string, { resume, onFrame }: SessionOptions) {
    const url = new URL(path, baseUrl);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (resume?.by === 'header') headers['last-event-id'] = String(resume.after);
    if (resume?.by === 'query') url.searchParams.set('last_event_id', String(resume.after));
    this.opened = new Promise((resolve) => (this.#onOpened = resolve));
    this.ended = this.#run(url, headers, onFrame).then((end) => {
      this.#onOpened(this.status);
      return (this.end = end);
    });
  }

  /** Closes the connection from our side, as a client going away would. */
  drop(): void {
    this.#dropped = true;
    this.#abort.abort();
  }

  async #run(url: URL, headers: Record<string, string>, onFrame: SessionOptions['onFrame']): Promise<SessionEnd> {
    let response: Response;
    try {
      response = await fetch(url, { headers, signal: this.#abort.signal });
    } catch (error) {
      if (this.#dropped) return 'dropped';
      this.error = describe(error);
      return 'error';
    }
    this.status = response.status;
    this.#onOpened(response.status);
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel().catch(() => {});
      return 'refused';
    }
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        if (this.#dropped) return;
        onFrame({ id: message.id === undefined ? NaN : Number(message.id), event: message.event ?? 'message', data: parseJson(message.data) }, this);
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        if (this.#dropped) break;
      }
    } catch (error) {
      if (this.#dropped) return 'dropped';
      this.error = describe(error);
      return 'error';
    }
    if (this.#dropped) {
      this.#abort.abort();
      return 'dropped';
    }
    return 'server';
  }
}

function parseJson(data: string): any {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

import { EventSource, type ErrorEvent, type FetchLike } from 'eventsource';

export interface BrowserEvent {
  type: string;
  id: string;
  /** `data` parsed as JSON. */
  json: any;
}

export interface BrowserRequest {
  /** The Last-Event-ID header the client sent, or null on its first connection. */
  lastEventId: string | null;
  /** The status the server answered (undefined until the headers arrive). */
  status: number | undefined;
}

/**
 * What a browser does: an `EventSource` (the `eventsource` package, spec-compliant) that
 * listens for the given event types. Records every request it makes, so a test can see
 * the reconnect and its Last-Event-ID, and every event and error it dispatches.
 */
export class BrowserLikeClient {
  readonly source: EventSource;
  readonly events: BrowserEvent[] = [];
  readonly requests: BrowserRequest[] = [];
  readonly errors: { code: number | undefined; message: string | undefined }[] = [];

  constructor(url: string, eventTypes: readonly string[]) {
    const recordingFetch: FetchLike = async (input, init) => {
      const request: BrowserRequest = { lastEventId: init.headers['Last-Event-ID'] ?? null, status: undefined };
      this.requests.push(request);
      const response = await fetch(input, init);
      request.status = response.status;
      return response;
    };
    this.source = new EventSource(url, { fetch: recordingFetch });
    for (const type of eventTypes) {
      this.source.addEventListener(type, (event) => {
        this.events.push({ type: event.type, id: event.lastEventId, json: JSON.parse(event.data) });
      });
    }
    this.source.addEventListener('error', (event: ErrorEvent) => {
      this.errors.push({ code: event.code, message: event.message });
    });
  }

  get closed(): boolean {
    return this.source.readyState === this.source.CLOSED;
  }

  close(): void {
    this.source.close();
  }
}

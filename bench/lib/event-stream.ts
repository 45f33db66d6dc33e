import { get, type ClientRequest } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { withDeadline } from './deadline.ts';

export interface EventStream {
  /** Resolves when the server ends the stream or it is closed. */
  readonly ended: Promise<void>;
  close(): void;
}

/**
 * Opens an SSE stream and hands every event to `onEvent`; resolves once the server has
 * answered 200, which the service does only after the subscription is in place.
 */
export async function openEventStream(url: string, onEvent: (event: EventSourceMessage) => void): Promise<EventStream> {
  let outgoing: ClientRequest | undefined;
  const opened = new Promise<EventStream>((resolve, reject) => {
    outgoing = get(url, { headers: { accept: 'text/event-stream' }, agent: false }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        return reject(new Error(`GET ${url} answered ${response.statusCode}`));
      }
      const parser = createParser({ onEvent });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => parser.feed(chunk));
      const ended = new Promise<void>((done) => response.once('close', done));
      resolve({ ended, close: () => outgoing!.destroy() });
    });
    outgoing.on('error', reject);
  });
  try {
    return await withDeadline(opened, `the stream at ${url} to open`, 10_000);
  } catch (error) {
    outgoing?.destroy();
    throw error;
  }
}

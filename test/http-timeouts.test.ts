import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

/*
 * HEADERS_TIMEOUT_MS and REQUEST_TIMEOUT_MS bound how long a client may take to send its
 * request; they must never cut a response that is still going out (a long poll, a stream) or
 * a keep-alive connection waiting for its next request. Short values here (500 ms, 1 s), and
 * no sleeps: a request that is cut is the clock that proves the timeout has passed.
 */

const TIMEOUTS = { HEADERS_TIMEOUT_MS: '500', REQUEST_TIMEOUT_MS: '1000' };

let server: TestServer | undefined;
const sockets: Socket[] = [];
const clients: SseClient[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

/** A server with short timeouts whose log lines (JSON) are kept for the test to read. */
async function serve(): Promise<{ server: TestServer; logs: Record<string, any>[] }> {
  const logs: Record<string, any>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  server = await startTestServer(TIMEOUTS, { logger });
  return { server, logs };
}

/** A raw connection that records what the server sends and when it closes. */
function rawSocket(target: TestServer): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect(Number(new URL(target.url).port), '127.0.0.1');
  sockets.push(socket);
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, received: () => received, closed };
}

/** Writes `text` now and then one more byte every `everyMs`, until the socket closes. */
function trickle(socket: Socket, text: string, byte: string, everyMs = 50): void {
  socket.write(text);
  const timer = setInterval(() => {
    if (socket.destroyed) clearInterval(timer);
    else socket.write(byte);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

const errorLines = (logs: Record<string, any>[]) => logs.filter((line) => line.level >= 50);

describe('request timeouts', () => {
  it('answers 408 and closes a connection that sends nothing, or its headers too slowly, while serving everyone else', async () => {
    const { server } = await serve();
    const slow = [
      ...Array.from({ length: 10 }, () => rawSocket(server)), // connect and say nothing
      ...Array.from({ length: 10 }, () => {
        const connection = rawSocket(server);
        connection.socket.write('GET /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // half a head, then nothing
        return connection;
      }),
      ...Array.from({ length: 10 }, () => {
        const connection = rawSocket(server);
        // A byte every 50 ms: always busy, never done. The timeout counts from the first byte.
        trickle(connection.socket, 'GET /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 'a');
        return connection;
      }),
    ];
    // Thirty slow clients hold no one up.
    const healthz = await server.api('/healthz');
    expect(healthz.status).toBe(200);
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const waited = (await (await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=20000`)).json()) as { status: string };
    expect(waited.status).toBe('completed');

    await withTimeout(Promise.all(slow.map(({ closed }) => closed)), 'every slow connection to be closed', 20_000);
    for (const { received } of slow) expect(received()).toMatch(/^HTTP\/1\.1 408 /);
    expect((await server.api('/healthz')).status).toBe(200);
  });

  for (const framing of ['content-length', 'chunked'] as const) {
    it(`answers 408 to a ${framing} body that trickles past REQUEST_TIMEOUT_MS, creates no task and logs no server error`, async () => {
      const { server, logs } = await serve();
      const { socket, received, closed } = rawSocket(server);
      const head =
        'POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        (framing === 'chunked' ? 'Transfer-Encoding: chunked\r\n\r\n8\r\n{"type":\r\n' : 'Content-Length: 1000\r\n\r\n{"type":');
      // The head is complete at once: only the body is slow.
      trickle(socket, head, framing === 'chunked' ? '1\r\n \r\n' : ' ');
      await withTimeout(closed, 'the slow body\'s connection to be closed', 20_000);
      expect(received()).toMatch(/^HTTP\/1\.1 408 /);
      // The app had started on the request: its log line comes when the response closes.
      await until(() => logs.some((line) => line.msg === 'request' && line.method === 'POST'), 'the log line of the cut request');

      expect((await server.service.stats()).tasks).toBe(0);
      // A client that was too slow is not the service failing.
      expect(errorLines(logs), JSON.stringify(errorLines(logs)).slice(0, 1000)).toEqual([]);
      const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
      expect(task.status).toBe('queued');
    });
  }

  it('never cuts a long poll, an event stream, or a keep-alive connection between requests', async () => {
    const { server, logs } = await serve();
    const task = await server.create({ type: 'block', input: {} });
    const stream = await SseClient.connect(`${server.url}${task.stream_url}`);
    clients.push(stream);
    let streamEnded = false;
    void stream.ended.then(() => (streamEnded = true));
    let polled: Response | undefined;
    const poll = server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=60000`).then((response) => (polled = response));

    // A keep-alive connection that got its answer and now waits for its next request.
    const idle = rawSocket(server);
    idle.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until(() => /\r\n\r\n\{"status":"ok"\}$/.test(idle.received()), 'the keep-alive connection\'s first answer');
    const firstAnswer = idle.received();

    // The clock: a body sent too slowly is cut once REQUEST_TIMEOUT_MS has passed since it
    // began, which was after the stream, the poll and the idle connection were opened.
    const canary = rawSocket(server);
    trickle(canary.socket, 'POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{', ' ');
    await withTimeout(canary.closed, 'the slow body to be cut', 20_000);
    expect(canary.received()).toMatch(/^HTTP\/1\.1 408 /);

    expect(streamEnded).toBe(false);
    expect(polled).toBeUndefined();
    expect(idle.socket.destroyed).toBe(false);
    expect(idle.received()).toBe(firstAnswer); // no 408 for a connection between requests
    idle.socket.write('GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await until(() => idle.received().includes('{"status":"ready"}'), 'the keep-alive connection\'s second answer');

    // Everything still open is still live.
    expect((await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    const answer = await withTimeout(poll, 'the long poll to answer');
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { status: string }).status).toBe('cancelled');
    const events = await stream.untilEnd('the stream to end with the task');
    expect(events.at(-1)?.event).toBe('task_cancelled');
    expect(errorLines(logs)).toEqual([]);
  });
});

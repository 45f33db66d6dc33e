import { get, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient, type SseEvent } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

/*
 * A client that stops reading must cost the server bounded memory and must never lose a
 * lifecycle event. The bounds are the ones in src/server.ts: past 1 MiB of unsent bytes a
 * stream's progress is coalesced to the latest per task; past 8 MiB the stream is closed and
 * its client resumes with Last-Event-ID. What is measured is the server's own state: the
 * `writableLength` of the stalled stream's Node response after every write to it.
 */

const COALESCE_ABOVE_BYTES = 1024 * 1024;
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

const servers: TestServer[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

/** What the server buffered for one stream: measured after every write to its response. */
interface BufferedStream {
  response: ServerResponse;
  /** Largest `writableLength` seen right after a write. */
  peakBytes: number;
  /** Largest single chunk written (an event frame, or a heartbeat). */
  largestChunk: number;
  writes: number;
}

/**
 * Watches every stream the hub opens from now on, by wrapping `hub.open` on this server only:
 * each response's writes are measured as the hub makes them.
 */
function watchStreams(server: TestServer): BufferedStream[] {
  const streams: BufferedStream[] = [];
  const hub = server.hub;
  const open = hub.open.bind(hub);
  hub.open = ((response: ServerResponse, ...rest: unknown[]) => {
    const watched: BufferedStream = { response, peakBytes: 0, largestChunk: 0, writes: 0 };
    streams.push(watched);
    const write = response.write.bind(response) as (chunk: string | Uint8Array, ...more: unknown[]) => boolean;
    response.write = ((chunk: string | Uint8Array, ...more: unknown[]) => {
      const flowing = write(chunk, ...more);
      watched.writes++;
      watched.largestChunk = Math.max(watched.largestChunk, Buffer.byteLength(chunk));
      watched.peakBytes = Math.max(watched.peakBytes, response.writableLength);
      return flowing;
    }) as ServerResponse['write'];
    return (open as (...args: unknown[]) => ReturnType<typeof hub.open>)(response, ...rest);
  }) as typeof hub.open;
  return streams;
}

/** The watched stream whose client is `request` (matched by the client's local port). */
function streamOf(streams: BufferedStream[], request: ClientRequest): BufferedStream | undefined {
  const port = request.socket?.localPort;
  return streams.find((stream) => stream.response.socket?.remotePort === port || stream.response.req.socket.remotePort === port);
}

/**
 * An SSE client over node:http. Stalled, it reads nothing until told: its response is paused,
 * so once Node's small read buffer is full the socket stops reading and the kernel buffers
 * fill, then the server's. `resume()` reads everything that was sent, in order. Unlike the
 * fetch-based SseClient, it reports a stream the server cut as `cut` rather than throwing.
 */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly request: ClientRequest;
  response!: IncomingMessage;
  /** Resolves when the response ends, normally or because the server cut it. */
  readonly ended: Promise<'end' | 'cut'>;
  readonly #headers: Promise<IncomingMessage>;
  #waiters: (() => void)[] = [];

  constructor(url: string, { headers = {}, stalled = false }: { headers?: Record<string, string>; stalled?: boolean } = {}) {
    let onEnd!: (how: 'end' | 'cut') => void;
    this.ended = new Promise((resolve) => (onEnd = resolve));
    void this.ended.then(() => this.#notify());
    let onHeaders!: (response: IncomingMessage) => void;
    let onError!: (error: Error) => void;
    this.#headers = new Promise((resolve, reject) => ((onHeaders = resolve), (onError = reject)));
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        this.events.push({ id: message.id, event: message.event, data: message.data, json: safeJson(message.data) });
        this.#notify();
      },
    });
    this.request = get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      this.response = response;
      if (stalled) response.pause();
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => parser.feed(chunk));
      response.on('end', () => onEnd('end'));
      response.on('aborted', () => onEnd('cut'));
      response.on('error', () => onEnd('cut'));
      response.on('close', () => onEnd(response.complete ? 'end' : 'cut'));
      onHeaders(response);
    });
    this.request.on('error', (error) => {
      onError(error);
      onEnd('cut');
    });
  }

  headers(): Promise<IncomingMessage> {
    return withTimeout(this.#headers, 'the response headers of an SSE reader');
  }

  resume(): void {
    this.response.resume();
  }

  /** Resolves true once `predicate` holds over the events so far, false if the stream ends first. */
  async until(predicate: (events: SseEvent[]) => boolean, label: string, ms = 30_000): Promise<boolean> {
    let over = false;
    void this.ended.then(() => (over = true));
    return withTimeout(
      (async () => {
        for (;;) {
          if (predicate(this.events)) return true;
          if (over) return false;
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      label,
      ms,
    );
  }

  close(): void {
    this.request.destroy();
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

function safeJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

const TERMINAL = new Set(['task_completed', 'task_failed', 'task_cancelled']);
const typesOf = (events: readonly SseEvent[]) => events.map((event) => event.event ?? 'message');
const idsOf = (events: readonly SseEvent[]) => events.map((event) => Number(event.id));
const isIncreasing = (values: readonly number[]) => values.every((value, index) => index === 0 || value > values[index - 1]!);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;

async function statusOf(server: TestServer, taskId: string): Promise<string> {
  return ((await (await server.api(`/api/tasks/${taskId}`)).json()) as { status: string }).status;
}

describe('a client that stops reading', () => {
  it('on a task that floods progress costs about 1 MiB, and still gets every lifecycle event when it reads again', async () => {
    const server = await serve();
    const streams = watchStreams(server);
    // Held queued until every client is in place.
    await server.service.pause();
    const COUNT = 100_000; // about 25 MB of progress frames: far more than the socket buffers hold
    const flood = await server.create({ type: 'flood', input: { count: COUNT } });
    const sample = await server.create({ type: 'sample', input: { steps: 3, step_ms: 1 } });

    const stalled = new SseReader(`${server.url}${flood.stream_url}`, { stalled: true });
    closers.push(() => stalled.close());
    expect((await stalled.headers()).statusCode).toBe(200);
    // A reader on the same flood, and one on another task: neither may be held up.
    const reader = await SseClient.connect(`${server.url}${flood.stream_url}`);
    closers.push(() => reader.close());
    const other = await SseClient.connect(`${server.url}${sample.stream_url}`);
    closers.push(() => other.close());
    await until(() => streams.length === 3, 'three streams to be open');
    const watched = streamOf(streams, stalled.request);
    expect(watched, 'the stalled client\'s stream on the server').toBeDefined();
    const memoryBefore = process.memoryUsage();

    await server.service.resume();

    // The other task runs alongside and its stream is exact.
    await other.untilEnd('the sample task\'s stream to end', 30_000);
    expect(typesOf(other.events)).toEqual(['task_started', 'progress_update', 'progress_update', 'progress_update', 'task_completed']);
    // The reading client of the same flood gets through to the end.
    await reader.untilEnd('the reading client of the flood to get its terminal event', 60_000);
    expect(reader.events.at(-1)?.event).toBe('task_completed');
    expect(isIncreasing(idsOf(reader.events))).toBe(true);

    // The flood is over and the server has ended the stalled stream, which still has not read.
    await until(async () => (await statusOf(server, flood.task_id)) === 'completed', 'the flood to complete', 60_000);
    await until(() => watched!.response.writableEnded, 'the server to end the stalled stream', 30_000);
    const memoryAfter = process.memoryUsage();
    const buffered = streams.reduce((sum, stream) => sum + stream.response.writableLength, 0);
    console.log(
      `slow reader (flood of ${COUNT}): peak buffered ${watched!.peakBytes} bytes (${mib(watched!.peakBytes)}) for the stalled client, ` +
        `coalescing above ${COALESCE_ABOVE_BYTES}; ${watched!.writes} writes; still buffered at the end ${buffered} bytes in all; ` +
        `process heap +${mib(memoryAfter.heapUsed - memoryBefore.heapUsed)}, rss +${mib(memoryAfter.rss - memoryBefore.rss)} during the flood`,
    );
    // It really fell behind (the coalescing threshold was crossed) …
    expect(watched!.peakBytes).toBeGreaterThan(COALESCE_ABOVE_BYTES);
    // … and the server held about 1 MiB for it. Past the threshold, only the frame that crossed
    // it, the latest progress (kept aside, sent before the end) and the terminal frame go out
    // until the socket drains; it never came near the point of being cut.
    expect(watched!.peakBytes).toBeLessThanOrEqual(COALESCE_ABOVE_BYTES + 3 * watched!.largestChunk);
    expect(watched!.response.destroyed).toBe(false);
    expect(stalled.events).toHaveLength(0);

    // Reading again, it gets everything that was kept for it, ending with the terminal event.
    stalled.resume();
    expect(await withTimeout(stalled.ended, 'the stalled client to read to the end', 30_000)).toBe('end');
    const types = typesOf(stalled.events);
    expect(types[0]).toBe('task_started');
    expect(types.at(-1)).toBe('task_completed');
    expect(types.filter((type) => type === 'task_started' || TERMINAL.has(type))).toEqual(['task_started', 'task_completed']);
    expect(isIncreasing(idsOf(stalled.events))).toBe(true);
    // Progress was thinned, but the latest is never lost: the last one is step COUNT of COUNT.
    const progress = stalled.events.filter((event) => event.event === 'progress_update');
    expect(progress.length).toBeLessThan(COUNT);
    expect(progress.at(-1)?.json.data.text).toBe(String(COUNT));
    expect(stalled.events.at(-1)?.json.data.result).toEqual({ sent: COUNT });
    await until(() => server.hub.size === 0, 'every stream to be closed');
  }, 90_000);

  it('on the all-tasks stream is cut past 8 MiB, and resuming with Last-Event-ID loses no lifecycle event', async () => {
    const server = await serve();
    const streams = watchStreams(server);
    await server.service.pause();
    const stalled = new SseReader(`${server.url}/api/events`, { stalled: true });
    closers.push(() => stalled.close());
    expect((await stalled.headers()).statusCode).toBe(200);
    await until(() => streams.length === 1, 'the stalled stream to be open');
    const watched = streamOf(streams, stalled.request)!;
    expect(watched).toBeDefined();

    // Big lifecycle frames, which are never coalesced: each task's task_created carries its
    // 900 kB input and its task_completed a result as large. 12 tasks: about 21 MB of frames.
    const TASKS = 12;
    const items = Array.from({ length: 9 }, (_, index) => `${index}`.padEnd(100_000, 'x'));
    const taskIds: string[] = [];
    for (let index = 0; index < TASKS; index++) {
      taskIds.push((await server.create({ type: 'batch', input: { items, operation: 'uppercase' } })).task_id);
    }
    const sample = await server.create({ type: 'sample', input: { steps: 3, step_ms: 1 } });
    const other = await SseClient.connect(`${server.url}${sample.stream_url}`);
    closers.push(() => other.close());
    await server.service.resume();

    await until(() => watched.response.destroyed, 'the server to cut the stalled stream', 60_000);
    console.log(
      `slow reader (all-tasks stream): peak buffered ${watched.peakBytes} bytes (${mib(watched.peakBytes)}) for the stalled client ` +
        `before it was cut at ${MAX_BUFFERED_BYTES}; largest frame ${watched.largestChunk} bytes`,
    );
    // Cut by the write that took it past 8 MiB: never more than that one frame over.
    expect(watched.peakBytes).toBeGreaterThan(MAX_BUFFERED_BYTES);
    expect(watched.peakBytes).toBeLessThanOrEqual(MAX_BUFFERED_BYTES + watched.largestChunk);
    // Other streams and tasks carry on.
    await other.untilEnd('the sample task\'s stream to end', 60_000);
    expect(typesOf(other.events)).toEqual(['task_started', 'progress_update', 'progress_update', 'progress_update', 'task_completed']);

    // The stalled client reads what reached it, then resumes after the last whole event.
    stalled.resume();
    expect(await withTimeout(stalled.ended, 'the stalled client to read up to the cut', 30_000)).toBe('cut');
    const first = stalled.events;
    expect(first.length).toBeGreaterThan(0);
    for (const taskId of taskIds) {
      await until(async () => (await statusOf(server, taskId)) === 'completed', `batch task ${taskId} to complete`, 60_000);
    }
    // Like EventSource: reconnect with Last-Event-ID whenever the stream is cut, until every
    // batch task's terminal event has arrived. Replaying what was missed is itself a burst of
    // big frames, so a resume may be cut again; each must get further than the last.
    const completedIn = (events: readonly SseEvent[]) =>
      events.filter((event) => event.event === 'task_completed' && taskIds.includes(event.json?.task_id));
    const resumed: SseEvent[] = [];
    const replays: BufferedStream[] = [];
    let reconnects = 0;
    while (completedIn([...first, ...resumed]).length < TASKS) {
      expect(reconnects, 'reconnects needed to catch up').toBeLessThan(30);
      reconnects++;
      const lastId = [...first, ...resumed].at(-1)!.id!;
      const reader = new SseReader(`${server.url}/api/events`, { headers: { 'last-event-id': lastId } });
      closers.push(() => reader.close());
      expect((await reader.headers()).statusCode).toBe(200);
      replays.push(streamOf(streams, reader.request)!);
      await reader.until(
        (events) => completedIn([...first, ...resumed, ...events]).length === TASKS,
        `every batch task's task_completed, on reconnect ${reconnects} after event ${lastId}`,
      );
      reader.close();
      const whole = reader.events.filter((event) => event.event !== 'resync');
      expect(whole.length, `events received on reconnect ${reconnects} (none: the replay was cut before any of it left)`).toBeGreaterThan(0);
      resumed.push(...reader.events);
    }
    console.log(
      `slow reader (all-tasks stream): caught up after ${reconnects} reconnect(s) with Last-Event-ID; ` +
        `peak buffered while replaying: ${replays.map((replay) => replay.peakBytes).join(', ')} bytes`,
    );
    // Replaying is paced by the client as well: about 1 MiB at a time, never a burst.
    for (const replay of replays) {
      expect(replay.peakBytes).toBeLessThanOrEqual(COALESCE_ABOVE_BYTES + 2 * replay.largestChunk);
    }
    const all = [...first, ...resumed];
    expect(resumed.map((event) => event.event)).not.toContain('resync');
    // No duplicates and nothing out of order across the cut.
    expect(isIncreasing(idsOf(all))).toBe(true);
    // Every lifecycle event of every batch task arrived exactly once, in order.
    for (const taskId of taskIds) {
      const lifecycle = all
        .filter((event) => event.json?.task_id === taskId && event.event !== 'progress_update')
        .map((event) => event.event);
      expect(lifecycle, `lifecycle of ${taskId}`).toEqual(['task_created', 'task_started', 'task_completed']);
    }
  }, 120_000);
});

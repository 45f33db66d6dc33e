import type { ServerResponse } from 'node:http';
import type { LoggedEvent } from '../broker/broker.ts';
import { errors } from '../errors.ts';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // Tells nginx and similar proxies not to buffer the stream.
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const;

/** Frames gathered in a tick go out at once past this many characters (a socket write's worth). */
const FLUSH_AT_CHARS = 16 * 1024;

/**
 * The last frame built for each kind of stream. An event goes out to every live stream in
 * one pass, so one entry per kind serves a fan-out; a replay builds its frames again. A
 * frame kept as long as its event would double what every retained event holds.
 */
const lastFrames = {
  task: { logged: undefined as LoggedEvent | undefined, frame: '' },
  multiplexed: { logged: undefined as LoggedEvent | undefined, frame: '' },
};

/**
 * The SSE frame of an event, built once however many streams carry it at once: on a
 * per-task stream its id is the task's seq, on the multiplexed stream the service-wide
 * position. JSON never contains a raw newline, so one `data:` line is enough.
 */
export function frameOf(logged: LoggedEvent, stream: 'task' | 'multiplexed'): string {
  const last = lastFrames[stream];
  if (last.logged !== logged) {
    const id = stream === 'task' ? logged.seq : logged.position;
    last.frame = `id: ${id}\nevent: ${logged.event_type}\ndata: ${logged.json}\n\n`;
    last.logged = logged;
  }
  return last.frame;
}

export interface SseHubOptions {
  heartbeatMs: number;
  retryMs: number;
  /**
   * Past this many unsent bytes a stream is "behind": progress frames are coalesced to the
   * latest per task until the client catches up. Lifecycle frames are always queued.
   */
  coalesceAboveBytes: number;
  /** A stream whose unsent bytes exceed this is closed; its client resumes with Last-Event-ID. */
  maxBufferedBytes: number;
  /** Open streams in all, and per owner (streams without an owner count only in all). */
  maxStreams: number;
  maxStreamsPerOwner: number;
}

/**
 * One open SSE response. Writes go straight to the Node response, synchronously: no
 * per-event awaits, and a slow reader costs bounded memory.
 */
export class SseStream {
  readonly #response: ServerResponse;
  readonly #hub: SseHub;
  readonly owner: string | undefined;
  /** Latest unsent progress frame per task while the client is behind, in arrival order. */
  /** Created when the client first falls behind: most streams never need it. */
  #pending: Map<string, string> | undefined;
  /**
   * While a replay is going out: its steps, then the live frames that arrived meanwhile, in
   * order. Steps before `#backlogNext` are done.
   */
  #backlog: ((() => void) | undefined)[] | undefined;
  #backlogNext = 0;
  /** Bytes of live frames waiting in the backlog; past maxBufferedBytes the stream is cut. */
  #backlogLiveBytes = 0;
  #inBacklog = false;
  #endAfterBacklog = false;
  #closed = false;
  #onClose: (() => void) | undefined;
  /**
   * Frames written this tick, sent as one chunk when the hub flushes (at the end of the
   * tick): a stream that carries several events in one tick costs one socket write.
   */
  #out = '';

  constructor(response: ServerResponse, hub: SseHub, owner: string | undefined) {
    this.#response = response;
    this.#hub = hub;
    this.owner = owner;
  }

  /**
   * Sends an event frame. A `coalescable` frame (progress) may be replaced by a newer one
   * with the same `key` (task id) while the client is behind; other frames are never
   * dropped, and a pending frame with their key goes out first, so order per task holds.
   */
  send(frame: string, key: string, coalescable: boolean): void {
    if (this.#closed) return;
    if (this.#backlog && !this.#inBacklog) {
      // A replay is still going out: live frames wait behind it.
      this.#backlog.push(() => this.send(frame, key, coalescable));
      this.#backlogLiveBytes += frame.length;
      if (this.#backlogLiveBytes > this.#hub.options.maxBufferedBytes) this.#cut();
      return;
    }
    if (coalescable && this.#unsent() > this.#hub.options.coalesceAboveBytes) {
      if (!this.#pending) {
        this.#pending = new Map();
        this.#response.on('drain', () => this.#flushPending());
      }
      this.#pending.delete(key); // re-insert: keep arrival order
      this.#pending.set(key, frame);
      return;
    }
    const pending = this.#pending?.get(key);
    if (pending !== undefined) {
      this.#pending!.delete(key);
      this.write(pending);
    }
    this.write(frame);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the stream ends for any reason: finished, evicted or disconnected. */
  onClose(listener: () => void): void {
    this.#onClose = listener;
  }

  /**
   * Hands retained events to `deliver`, in order, only while the client keeps up: past the
   * coalescing threshold it waits for 'drain'. Written at once, a long replay would be
   * buffered whole within one tick (Node corks the socket until the next), so a replay over
   * maxBufferedBytes would be cut before its first byte left, and again on every reconnect.
   */
  replay<T>(items: readonly T[], deliver: (item: T) => void): void {
    if (this.#closed || items.length === 0) return;
    this.#backlog = items.map((item) => () => deliver(item));
    this.#backlogNext = 0;
    this.#pump();
  }

  #pump(): void {
    const backlog = this.#backlog;
    while (backlog && !this.#closed && this.#backlogNext < backlog.length) {
      if (this.#unsent() > this.#hub.options.coalesceAboveBytes) {
        this.flush();
        // Past the threshold Node's buffer is over its high-water mark, so 'drain' will come.
        if (this.#response.writableLength > this.#hub.options.coalesceAboveBytes) {
          this.#response.once('drain', () => this.#pump());
          return;
        }
      }
      const step = backlog[this.#backlogNext];
      backlog[this.#backlogNext++] = undefined;
      this.#inBacklog = true;
      try {
        step?.();
      } finally {
        this.#inBacklog = false;
      }
    }
    this.#backlog = undefined;
    this.#backlogLiveBytes = 0;
    if (this.#endAfterBacklog) this.end();
  }

  write(chunk: string): void {
    if (this.#closed) return;
    if (this.#out === '' && this.#response.writableLength > 0) {
      // Behind already: Node queues the chunk behind what the socket has not taken, at no
      // system call, so there is nothing to gather.
      this.#response.write(chunk);
    } else {
      if (this.#out === '') this.#hub._flushSoon(this);
      this.#out += chunk;
      if (this.#out.length >= FLUSH_AT_CHARS) this.flush();
    }
    // The client stopped reading: drop it rather than buffer without bound.
    if (this.#unsent() > this.#hub.options.maxBufferedBytes) this.#cut();
  }

  /** Sends the frames gathered so far. */
  flush(): void {
    if (this.#closed || this.#out === '') return;
    const out = this.#out;
    this.#out = '';
    this.#response.write(out);
  }

  /** Bytes not yet taken by the socket: this tick's frames and Node's own buffer. */
  #unsent(): number {
    return this.#out.length + this.#response.writableLength;
  }

  #cut(): void {
    this.#response.destroy();
    this.#cleanup();
  }

  /** Ends the response after everything written so far (and any replay still going out). */
  end(): void {
    if (this.#closed) return;
    if (this.#backlog && this.#backlogNext < this.#backlog.length) {
      this.#endAfterBacklog = true;
      return;
    }
    this.#flushPending();
    const out = this.#out;
    this.#out = '';
    this.#response.end(out);
    this.#cleanup();
  }

  #flushPending(): void {
    if (!this.#pending || this.#pending.size === 0 || this.#closed) return;
    const frames = [...this.#pending.values()];
    this.#pending.clear();
    for (const frame of frames) this.write(frame);
  }

  /** Ends the stream from the other side (client gone or socket destroyed). */
  _disconnected(): void {
    this.#cleanup();
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#out = '';
    this.#pending?.clear();
    this.#backlog = undefined;
    this.#hub._remove(this);
    const listener = this.#onClose;
    this.#onClose = undefined;
    listener?.();
  }
}

/**
 * Every open SSE stream: one heartbeat timer for all of them, and a way to end them all.
 * Long polls (`GET …/wait`) hold a connection just as long, so they count against the same
 * limits (MAX_STREAMS, MAX_STREAMS_PER_OWNER) while they wait.
 */
export class SseHub {
  readonly options: SseHubOptions;
  readonly #streams = new Set<SseStream>();
  readonly #perOwner = new Map<string, number>();
  #longPolls = 0;
  readonly #longPollsPerOwner = new Map<string, number>();
  readonly #heartbeat: NodeJS.Timeout;
  /** Streams with frames written this tick; flushed together once the tick's work is done. */
  #dirty: SseStream[] = [];

  constructor(options: SseHubOptions) {
    this.options = options;
    this.#heartbeat = setInterval(() => {
      for (const stream of this.#streams) stream.write(': heartbeat\n\n');
    }, options.heartbeatMs).unref();
  }

  /** Throws `too_many_streams` (429) if `owner` may not open another stream now. */
  assertCapacity(owner: string | undefined): void {
    const { maxStreams, maxStreamsPerOwner } = this.options;
    if (this.#streams.size + this.#longPolls >= maxStreams) throw errors.tooManyStreams(maxStreams, 'in all');
    if (owner !== undefined && count(this.#perOwner, owner) + count(this.#longPollsPerOwner, owner) >= maxStreamsPerOwner) {
      throw errors.tooManyStreams(maxStreamsPerOwner, 'for this owner');
    }
  }

  /**
   * Counts a long poll against the limits (checked first: 429 past them) until the returned
   * release is called; calling it again does nothing.
   */
  holdLongPoll(owner: string | undefined): () => void {
    this.assertCapacity(owner);
    this.#longPolls++;
    if (owner !== undefined) this.#longPollsPerOwner.set(owner, count(this.#longPollsPerOwner, owner) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#longPolls--;
      if (owner !== undefined) uncount(this.#longPollsPerOwner, owner);
    };
  }

  /** Long polls waiting now. */
  get longPolls(): number {
    return this.#longPolls;
  }

  /** Sends the 200 and the stream headers, and tracks the stream until it closes. */
  open(response: ServerResponse, owner?: string): SseStream {
    const stream = new SseStream(response, this, owner);
    if (owner !== undefined) this.#perOwner.set(owner, (this.#perOwner.get(owner) ?? 0) + 1);
    response.writeHead(200, SSE_HEADERS);
    // Let the first bytes go out at once rather than waiting for a body chunk.
    response.flushHeaders();
    response.socket?.setNoDelay(true);
    response.on('close', () => stream._disconnected());
    this.#streams.add(stream);
    stream.write(`retry: ${this.options.retryMs}\n\n`);
    return stream;
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Open streams of one owner, or of everyone when undefined. */
  streamsOf(owner: string | undefined): number {
    return owner === undefined ? this.#streams.size : (this.#perOwner.get(owner) ?? 0);
  }

  /** Ends every open stream (their already written frames are flushed first). */
  endAll(): void {
    for (const stream of [...this.#streams]) stream.end();
  }

  close(): void {
    clearInterval(this.#heartbeat);
    this.endAll();
  }

  _flushSoon(stream: SseStream): void {
    if (this.#dirty.push(stream) === 1) setImmediate(() => this.#flush());
  }

  #flush(): void {
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const stream of dirty) stream.flush();
  }

  _remove(stream: SseStream): void {
    if (!this.#streams.delete(stream) || stream.owner === undefined) return;
    uncount(this.#perOwner, stream.owner);
  }
}

const count = (counts: ReadonlyMap<string, number>, owner: string) => counts.get(owner) ?? 0;

function uncount(counts: Map<string, number>, owner: string): void {
  const left = count(counts, owner) - 1;
  if (left <= 0) counts.delete(owner);
  else counts.set(owner, left);
}

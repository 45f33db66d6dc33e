// Figures 3 and 4's client: thousands of SSE subscribers in a process of their own. It
// only counts frames (a blank line ends each), so its cost per event stays small next to
// the server's and is the same for the product and the baseline.
import { Agent, get, type ClientRequest } from 'node:http';
import { withDeadline } from '../lib/deadline.ts';
import { serveCommands } from '../lib/rpc.ts';

const FRAME_END = Buffer.from('\n\n');
const NEWLINE = 0x0a;

interface Subscriber {
  request: ClientRequest;
  frames: number;
  /** The previous chunk ended in a newline: a frame end may straddle two chunks. */
  newlineCarried: boolean;
  /** The server ended the response (true) or the connection closed first (false). */
  endedCleanly: boolean;
  finished: boolean;
}

const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
let subscribers: Subscriber[] = [];
let firstFrameAt = 0;
let lastFinishAt = 0;
let armed = false;
let finishedCount = 0;
/** Bumped by close(), so late events of closed streams are not counted against new ones. */
let generation = 0;
let onAllFinished: (() => void) | undefined;

function open(url: string): Promise<Subscriber> {
  const born = generation;
  return new Promise((resolve, reject) => {
    const subscriber: Subscriber = {
      request: get(url, { agent, headers: { accept: 'text/event-stream' } }),
      frames: 0,
      newlineCarried: false,
      endedCleanly: false,
      finished: false,
    };
    subscriber.request.on('error', reject);
    subscriber.request.on('response', (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        return reject(new Error(`GET ${url} answered ${response.statusCode}`));
      }
      response.on('data', (chunk: Buffer) => {
        if (armed && firstFrameAt === 0) firstFrameAt = performance.now();
        let frames = subscriber.newlineCarried && chunk[0] === NEWLINE ? 1 : 0;
        for (let at = chunk.indexOf(FRAME_END); at !== -1; at = chunk.indexOf(FRAME_END, at + 2)) frames++;
        subscriber.newlineCarried = chunk[chunk.length - 1] === NEWLINE;
        subscriber.frames += frames;
        // Connected once the first frame (the retry hint) is in: the server is done with it.
        if (subscriber.frames > 0) resolve(subscriber);
      });
      // Finished at the end of the response, or when the connection closes before it.
      const finish = (cleanly: boolean) => {
        if (born !== generation || subscriber.finished) return;
        subscriber.finished = true;
        subscriber.endedCleanly = cleanly;
        lastFinishAt = performance.now();
        if (++finishedCount === subscribers.length) onAllFinished?.();
      };
      response.on('end', () => finish(true));
      response.on('close', () => finish(false));
    });
  });
}

/** Opens `count` streams, `parallel` connects at a time so the listen backlog never overflows. */
async function connect({ url, count, parallel = 250 }: { url: string; count: number; parallel?: number }) {
  if (subscribers.length > 0) throw new Error('close the previous subscribers first');
  finishedCount = 0;
  const opened: Subscriber[] = [];
  for (let from = 0; from < count; from += parallel) {
    const wave = Array.from({ length: Math.min(parallel, count - from) }, () => open(url));
    opened.push(...(await withDeadline(Promise.all(wave), `${count} streams to open`, 30_000)));
  }
  subscribers = opened;
  return { connected: subscribers.length };
}

/** Starts counting from zero: what arrives from now on is the measured delivery. */
function arm() {
  for (const subscriber of subscribers) subscriber.frames = 0;
  firstFrameAt = 0;
  lastFinishAt = 0;
  armed = true;
  return {};
}

/** Waits until the server has ended every stream; frames per second from first frame to last end. */
async function done({ timeoutMs }: { timeoutMs: number }) {
  if (finishedCount < subscribers.length) {
    await withDeadline(new Promise<void>((resolve) => (onAllFinished = resolve)), 'every stream to end', timeoutMs);
  }
  armed = false;
  const frames = subscribers.reduce((sum, subscriber) => sum + subscriber.frames, 0);
  const seconds = (lastFinishAt - firstFrameAt) / 1000;
  return {
    subscribers: subscribers.length,
    endedCleanly: subscribers.filter((subscriber) => subscriber.endedCleanly).length,
    frames,
    seconds,
    rate: frames / seconds,
  };
}

/** Closes every stream still open. */
function close() {
  for (const subscriber of subscribers) subscriber.request.destroy();
  subscribers = [];
  generation++;
  onAllFinished = undefined;
  armed = false;
  return {};
}

const commands = { connect, arm, done, close };
export type SubscribersCommands = typeof commands;
serveCommands(commands);

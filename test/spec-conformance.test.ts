import { readFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SpecValidator, type RecordedResponse } from './helpers/spec-validator.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { withTimeout } from './helpers/timeout.ts';
import { RECORDED_REQUESTS, type ProfileName, type RecordedRequest } from './replay/requests.ts';

const spec = new SpecValidator(parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')));

const KEYS = { alice: 'alice-key-0123456789abcdef', bob: 'bob-key-0123456789abcdef' };
const KEYS_ON = { API_KEYS: `alice:${KEYS.alice},bob:${KEYS.bob}`, ADMIN_OWNERS: 'alice' };
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';
const JSON_TYPE = { 'content-type': 'application/json' };

type Mode = 'on' | 'off';

/** A server of one profile, its tasks, and how to call it as someone. */
class ReplayContext {
  readonly values: Record<string, string> = { unknown: UNKNOWN_ID };
  /** Streams the setup keeps open (to reach MAX_STREAMS); closed with the server. */
  readonly held: AbortController[] = [];

  constructor(
    readonly server: TestServer,
    readonly mode: Mode,
  ) {}

  headers(as: RecordedRequest['as'] = 'alice', extra: Record<string, string> = {}): Record<string, string> {
    if (this.mode === 'off' || as === 'none') return extra;
    const key = as === 'wrong' ? 'not-a-key-0123456789' : KEYS[as];
    return { authorization: `Bearer ${key}`, ...extra };
  }

  send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    return this.server.api(path, {
      method,
      headers: this.headers('alice', body === undefined ? {} : JSON_TYPE),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
  }

  async create(body: unknown): Promise<string> {
    const response = await this.send('POST', '/api/tasks', body);
    const task = (await response.json()) as { task_id: string };
    expect(response.status, `setup: create ${JSON.stringify(body)}`).toBe(201);
    return task.task_id;
  }

  async ended(taskId: string, status: string): Promise<void> {
    const response = await withTimeout(this.send('GET', `/api/tasks/${taskId}/wait?timeout_ms=20000`), `setup: task ${taskId} to end`, 25_000);
    expect(((await response.json()) as { status: string }).status, `setup: task ${taskId}`).toBe(status);
  }

  /** The `id:`s of a stream that ends by itself. */
  async ids(path: string): Promise<string[]> {
    const { body } = await record(await this.send('GET', path), undefined, path);
    const ids = [...body.matchAll(/^id: ?(\d+)$/gm)].map((match) => match[1]!);
    expect(ids.length, `setup: events on ${path}`).toBeGreaterThan(0);
    return ids;
  }

  /** Fills the placeholders of a path or body (as JSON text). */
  async fill(text: string): Promise<string> {
    if (text.includes('{fresh}')) this.values.fresh = await this.create({ type: 'block', input: {} });
    if (text.includes('{freshCancelled}')) {
      const taskId = await this.create({ type: 'block', input: {} });
      expect((await this.send('POST', `/api/tasks/${taskId}/cancel`)).status, 'setup: cancel').toBe(202);
      await this.ended(taskId, 'cancelled');
      this.values.freshCancelled = taskId;
    }
    return text.replaceAll(/\{(\w+)\}/g, (whole, name: string) => {
      const value = this.values[name];
      if (value === undefined) throw new Error(`no value for ${whole} in ${this.mode === 'on' ? 'keys-on' : 'keys-off'} mode`);
      return value;
    });
  }
}

/** Reads an answer whole; an event stream to its end, or `frames` frames, then hangs up. */
async function record(response: Response, frames: number | undefined, label: string, abort?: AbortController): Promise<RecordedResponse> {
  const streaming = response.status === 200 && response.headers.get('content-type')?.startsWith('text/event-stream');
  if (!streaming || !response.body) {
    return { status: response.status, headers: response.headers, body: await withTimeout(response.text(), `the body of ${label}`) };
  }
  let text = '';
  let seen = 0;
  const parser = createParser({ onEvent: () => seen++ });
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  const read = async () => {
    while (frames === undefined || seen < frames) {
      const { done, value } = await reader.read();
      if (done) return;
      const chunk = decoder.decode(value, { stream: true });
      text += chunk;
      parser.feed(chunk);
    }
  };
  await withTimeout(read(), `${frames ?? 'every'} frame(s) of ${label}`, 15_000);
  // Keep whole frames only: what came after the last one counted is cut off by hanging up.
  if (frames !== undefined) text = text.split('\n\n').slice(0, frames).map((frame) => `${frame}\n\n`).join('');
  await reader.cancel().catch(() => {});
  abort?.abort();
  return { status: response.status, headers: response.headers, body: text };
}

/** Each profile's settings, and the tasks and state its setup leaves for the requests. */
const PROFILES: Record<ProfileName, { env: Record<string, string>; modes: Mode[]; setup: (ctx: ReplayContext) => Promise<void> }> = {
  main: {
    env: { MAX_WORKERS: '1' },
    modes: ['off', 'on'],
    async setup(ctx) {
      const values = ctx.values;
      values.completed = await ctx.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
      await ctx.ended(values.completed, 'completed');
      values.failed = await ctx.create({ type: 'throws', input: { message: 'replayed' } });
      await ctx.ended(values.failed, 'failed');
      values.completedLastSeq = (await ctx.ids(`/api/tasks/${values.completed}/events`)).at(-1)!;
      const positions = await ctx.ids(`/api/events?task_id=${values.completed}`);
      values.completedFirstPosition = positions[0]!;
      values.completedLastPosition = positions.at(-1)!;
      // The only worker runs this until the end: every task made later stays queued.
      values.running = await ctx.create({ type: 'block', input: { progress: 1 } });
      const abort = new AbortController();
      const path = `/api/tasks/${values.running}/events`;
      await record(await ctx.send('GET', path, undefined, abort.signal), 2, `setup: ${path}`, abort);
      values.queued = await ctx.create({ type: 'block', input: {} });
      if (ctx.mode === 'on') {
        const response = await ctx.send('POST', '/api/stream-tokens', {});
        values.token = ((await response.json()) as { token: string }).token;
      }
    },
  },
  queueFull: {
    env: { MAX_QUEUE: '1' },
    modes: ['off'],
    async setup(ctx) {
      ctx.values.failed = await ctx.create({ type: 'throws', input: {} });
      await ctx.ended(ctx.values.failed, 'failed');
      await ctx.send('POST', '/api/queue/pause');
      await ctx.create({ type: 'block', input: {} });
    },
  },
  retainedFull: {
    env: { MAX_RETAINED_TASKS: '1' },
    modes: ['off'],
    async setup(ctx) {
      await ctx.send('POST', '/api/queue/pause');
      await ctx.create({ type: 'block', input: {} });
    },
  },
  streamsFull: {
    env: { MAX_STREAMS: '1' },
    modes: ['off'],
    async setup(ctx) {
      ctx.values.completed = await ctx.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
      await ctx.ended(ctx.values.completed, 'completed');
      const abort = new AbortController();
      ctx.held.push(abort);
      const response = await ctx.send('GET', '/api/events', undefined, abort.signal);
      expect(response.status, 'setup: the one stream MAX_STREAMS allows').toBe(200);
    },
  },
  draining: {
    env: {},
    modes: ['off'],
    async setup(ctx) {
      ctx.values.failed = await ctx.create({ type: 'throws', input: {} });
      await ctx.ended(ctx.values.failed, 'failed');
      // A task that never ends by itself keeps the service draining until it is closed.
      await ctx.create({ type: 'block', input: {} });
      void ctx.server.shutdown(60_000).catch(() => {});
    },
  },
  resync: {
    env: { EVENT_HISTORY: '3' },
    modes: ['off'],
    async setup(ctx) {
      for (let i = 0; i < 3; i++) await ctx.ended(await ctx.create({ type: 'sample', input: { steps: 2, step_ms: 0 } }), 'completed');
    },
  },
};

/** The requests of one profile in one mode; with keys on, each /api request again with no key. */
function requestsFor(profile: ProfileName, mode: Mode): RecordedRequest[] {
  const own = RECORDED_REQUESTS.filter((request) => (request.profile ?? 'main') === profile && (request.keys ?? mode) === mode);
  if (mode === 'off' || profile !== 'main') return own;
  const keyless = new Map<string, RecordedRequest>();
  for (const request of own) {
    const key = `${request.method} ${request.path.split('?')[0]}`;
    if (request.path.startsWith('/api/') && (request.as ?? 'alice') === 'alice' && !keyless.has(key)) {
      keyless.set(key, { ...request, name: `${request.name}, with no key`, as: 'none', frames: undefined, status: 401 });
    }
  }
  return [...own, ...keyless.values()];
}

const failures: string[] = [];

describe('every answer is one openapi.yaml describes', () => {
  for (const [profile, { env, modes, setup }] of Object.entries(PROFILES) as [ProfileName, (typeof PROFILES)[ProfileName]][]) {
    for (const mode of modes) {
      it(`${profile} server, keys ${mode}: each recorded request gets the recorded status and a documented answer`, { timeout: 120_000 }, async () => {
        const server = await startTestServer({ ...env, ...(mode === 'on' ? KEYS_ON : {}) });
        const ctx = new ReplayContext(server, mode);
        try {
          await setup(ctx);
          for (const request of requestsFor(profile, mode)) {
            const path = await ctx.fill(request.path);
            const label = `${request.name}: ${request.method} ${path.slice(0, 120)}`;
            const body =
              request.body === undefined ? undefined : await ctx.fill(typeof request.body === 'string' ? request.body : JSON.stringify(request.body));
            const abort = new AbortController();
            const response = await withTimeout(
              server.api(path, {
                method: request.method,
                headers: ctx.headers(request.as, {
                  ...(body === undefined ? {} : JSON_TYPE),
                  ...Object.fromEntries(await Promise.all(Object.entries(request.headers ?? {}).map(async ([name, value]) => [name, await ctx.fill(value)]))),
                }),
                ...(body === undefined ? {} : { body }),
                signal: abort.signal,
              }),
              `the answer to ${label}`,
            );
            const recorded = await record(response, request.frames, label, abort);
            const problems = [
              ...(recorded.status === request.status ? [] : [`answered ${recorded.status}, recorded ${request.status}: ${recorded.body.slice(0, 300)}`]),
              ...spec.check(request.method, path, recorded),
            ];
            failures.push(...problems.map((problem) => `[${profile}, keys ${mode}] ${label}: ${problem}`));
          }
        } finally {
          for (const abort of ctx.held) abort.abort();
          await server.close();
        }
        expect(failures.filter((failure) => failure.startsWith(`[${profile}, keys ${mode}]`))).toEqual([]);
      });
    }
  }

  it('every documented answer was seen: no route, status or error is described without a request here', () => {
    const unseen = spec.documented.filter((key) => !spec.seen.has(key));
    expect(unseen).toEqual([]);
    expect(spec.seen.has('* /api/tasks 405'), 'a method a path does not answer').toBe(true);
  });
});

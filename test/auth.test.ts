import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiKeyring } from '../src/auth/api-keys.ts';
import { StreamTokens } from '../src/auth/stream-tokens.ts';
import { ConfigError } from '../src/config.ts';
import { BrowserLikeClient } from './helpers/event-source.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

const KEYS = { alice: 'alice-key-0123456789abcdef', bob: 'bob-key-0123456789abcdef0' } as const;
const API_KEYS = `alice:${KEYS.alice},bob:${KEYS.bob}`;
type Owner = keyof typeof KEYS;

const bearer = (owner: Owner) => ({ authorization: `Bearer ${KEYS[owner]}` });
const jsonHeaders = (owner: Owner) => ({ ...bearer(owner), 'content-type': 'application/json' });

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function createAs(owner: Owner, body: unknown = { type: 'block', input: {} }): Promise<any> {
  const response = await server!.api('/api/tasks', { method: 'POST', headers: jsonHeaders(owner), body: JSON.stringify(body) });
  expect(response.status, `create as ${owner}`).toBe(201);
  return response.json();
}

async function expectProblem(response: Response, status: number, code: string): Promise<any> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  const problem: any = await response.json();
  expect(problem.code).toBe(code);
  return problem;
}

/** Waits until the task has ended, as its owner sees it. */
async function waitEnded(owner: Owner, taskId: string): Promise<any> {
  const response = await server!.api(`/api/tasks/${taskId}/wait?timeout_ms=20000`, { headers: bearer(owner) });
  expect(response.status).toBe(200);
  return response.json();
}

describe('authentication off (no API_KEYS)', () => {
  it('serves every route without credentials and gives plain stream URLs', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(task.owner).toBeNull();
    expect(task.stream_url).toBe(`/api/tasks/${task.task_id}/events`);
    expect((await server.api('/api/tasks')).status).toBe(200);
  });
});

describe('API keys', () => {
  it('answers 401 problem+json with WWW-Authenticate for a missing, malformed or wrong key', async () => {
    server = await startTestServer({ API_KEYS });
    for (const headers of [{} as Record<string, string>, { authorization: 'Basic abc' }, { authorization: 'Bearer wrong-key-0123456789' }, { authorization: `Bearer ${KEYS.alice}x` }]) {
      const response = await server.api('/api/tasks', { headers });
      const problem = await expectProblem(response, 401, 'unauthorized');
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(problem.detail).toMatch(/key/i);
    }
    // Pages, the spec and the probes stay open.
    for (const path of ['/healthz', '/readyz', '/openapi.yaml', '/', '/docs']) {
      expect((await server.api(path)).status, path).toBe(200);
    }
  });

  it('reads keys from API_KEYS_FILE too, and refuses weak or duplicate keys at start', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'taskstream-')), 'keys');
    writeFileSync(file, `# operators\ncarol:carol-key-0123456789abcdef\n\n`);
    server = await startTestServer({ API_KEYS, API_KEYS_FILE: file });
    const asCarol = await server.api('/api/tasks', { headers: { authorization: 'Bearer carol-key-0123456789abcdef' } });
    expect(asCarol.status).toBe(200);

    expect(() => ApiKeyring.parse([{ text: 'dave:short', source: 'API_KEYS' }])).toThrow(ConfigError);
    expect(() => ApiKeyring.parse([{ text: 'no-colon-here-0123456789', source: 'API_KEYS' }])).toThrow(/owner:key/);
    expect(() =>
      ApiKeyring.parse([{ text: `a:${KEYS.alice},b:${KEYS.alice}`, source: 'API_KEYS' }]),
    ).toThrow(/already given/);
  });
});

describe('isolation between owners', () => {
  it('shows each owner only its own tasks; another owner\'s task is 404 on every route', async () => {
    server = await startTestServer({ API_KEYS });
    const alices = await createAs('alice');
    const bobs = await createAs('bob', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    expect(alices.owner).toBe('alice');
    await waitEnded('bob', bobs.task_id);

    const listed: any = await (await server.api('/api/tasks', { headers: bearer('alice') })).json();
    expect(listed.tasks.map((task: any) => task.task_id)).toEqual([alices.task_id]);
    const stats: any = await (await server.api('/api/tasks/stats', { headers: bearer('alice') })).json();
    expect(stats.tasks).toMatchObject({ queued: 0, running: 1, completed: 0 });

    // Every route that names a task: bob's task does not exist for alice.
    const id = bobs.task_id;
    const attempts: [string, string][] = [
      ['GET', `/api/tasks/${id}`],
      ['GET', `/api/tasks/${id}/events`],
      ['GET', `/api/tasks/${id}/wait?timeout_ms=0`],
      ['POST', `/api/tasks/${id}/cancel`],
      ['POST', `/api/tasks/${id}/retry`],
      ['DELETE', `/api/tasks/${id}`],
      ['GET', `/api/events?task_id=${id}`],
    ];
    for (const [method, path] of attempts) {
      await expectProblem(await server.api(path, { method, headers: bearer('alice') }), 404, 'task_not_found');
    }
    // A stream token for bob's task cannot be minted by alice either.
    await expectProblem(
      await server.api('/api/stream-tokens', {
        method: 'POST',
        headers: jsonHeaders('alice'),
        body: JSON.stringify({ task_ids: [id] }),
      }),
      404,
      'task_not_found',
    );
    // Bulk clear only touches the caller's own tasks.
    const cleared = await server.api('/api/tasks?status=completed', { method: 'DELETE', headers: bearer('alice') });
    expect(await cleared.json()).toEqual({ deleted: 0 });
    expect((await server.api(`/api/tasks/${id}`, { headers: bearer('bob') })).status).toBe(200);
  });

  it('keeps idempotency keys per owner', async () => {
    server = await startTestServer({ API_KEYS });
    const body = JSON.stringify({ type: 'block', input: {} });
    const post = (owner: Owner) =>
      server!.api('/api/tasks', { method: 'POST', headers: { ...jsonHeaders(owner), 'idempotency-key': 'same' }, body });
    const first = await post('alice');
    const again = await post('alice');
    const bobs = await post('bob');
    expect([first.status, again.status, bobs.status]).toEqual([201, 200, 201]);
    const [a, b]: any[] = [await first.json(), await bobs.json()];
    expect(((await again.json()) as any).task_id).toBe(a.task_id);
    expect(b.task_id).not.toBe(a.task_id);
  });

  it('carries only the caller\'s events on the all-tasks stream', async () => {
    server = await startTestServer({ API_KEYS });
    const stream = await SseClient.connect(`${server.url}/api/events`, bearer('alice'));
    expect(stream.response.status).toBe(200);
    const bobs = await createAs('bob', { type: 'sample', input: { steps: 2, step_ms: 0 } });
    const alices = await createAs('alice', { type: 'sample', input: { steps: 2, step_ms: 0 } });
    await stream.waitFor(
      (events) => events.some((event) => event.event === 'task_completed' && event.json.task_id === alices.task_id),
      'alice\'s task_completed',
    );
    await waitEnded('bob', bobs.task_id);
    await server.api(`/api/tasks/${bobs.task_id}`, { method: 'DELETE', headers: bearer('bob') });
    await server.api(`/api/tasks/${alices.task_id}`, { method: 'DELETE', headers: bearer('alice') });
    await stream.waitFor((events) => events.some((event) => event.event === 'task_removed'), 'task_removed');
    stream.close();
    const seen = new Set(stream.events.map((event) => event.json.task_id));
    expect([...seen]).toEqual([alices.task_id]);

    // Resuming from an old position replays only alice's events as well.
    const resumed = await SseClient.connect(`${server.url}/api/events`, { ...bearer('alice'), 'last-event-id': stream.events[0]!.id! });
    await resumed.waitFor((events) => events.some((event) => event.event === 'task_removed'), 'replayed task_removed');
    resumed.close();
    expect(resumed.events.every((event) => event.json.task_id === alices.task_id)).toBe(true);
  });
});

describe('stream tokens', () => {
  it('lets new EventSource(stream_url) follow a task with no headers, and nothing else', async () => {
    server = await startTestServer({ API_KEYS });
    const task = await createAs('alice', { type: 'sample', input: { steps: 3, step_ms: 0 } });
    expect(task.stream_url).toMatch(new RegExp(`^/api/tasks/${task.task_id}/events\\?token=st1\\.`));

    const browser = new BrowserLikeClient(`${server.url}${task.stream_url}`, ['task_started', 'progress_update', 'task_completed']);
    await until(() => browser.events.some((event) => event.type === 'task_completed'), 'task_completed over EventSource');
    browser.close();
    expect(browser.requests[0]!.status).toBe(200);

    const token = new URL(task.stream_url, server.url).searchParams.get('token')!;
    const other = await createAs('alice');
    // The token names one task: not another of the same owner's, not the all-tasks stream.
    await expectProblem(await server.api(`/api/tasks/${other.task_id}/events?token=${token}`), 401, 'unauthorized');
    await expectProblem(await server.api(`/api/events?task_id=${other.task_id}&token=${token}`), 401, 'unauthorized');
    // And it never authorizes anything but a stream.
    for (const [method, path] of [
      ['GET', `/api/tasks/${task.task_id}`],
      ['GET', '/api/tasks'],
      ['POST', `/api/tasks/${other.task_id}/cancel`],
      ['DELETE', `/api/tasks/${task.task_id}`],
      ['POST', '/api/stream-tokens'],
    ] as const) {
      await expectProblem(await server.api(`${path}?token=${token}`, { method }), 401, 'unauthorized');
    }
    await expectProblem(
      await server.api(`/api/tasks?token=${token}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'block', input: {} }),
      }),
      401,
      'unauthorized',
    );
    // A forged or altered token is refused.
    const [version, payload, signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ o: 'bob', t: null, e: Date.now() + 60_000 })).toString('base64url');
    for (const bad of [`${version}.${forged}.${signature}`, `${version}.${payload}.${signature!.slice(1)}x`, 'garbage']) {
      await expectProblem(await server.api(`/api/tasks/${task.task_id}/events?token=${encodeURIComponent(bad)}`), 401, 'unauthorized');
    }
  });

  it('mints a token for the caller\'s multiplexed stream, optionally scoped to chosen tasks', async () => {
    server = await startTestServer({ API_KEYS });
    const mint = async (body?: unknown): Promise<any> => {
      const response = await server!.api('/api/stream-tokens', {
        method: 'POST',
        // No body at all is fine too: then the token covers every task of the caller.
        ...(body === undefined ? { headers: bearer('alice') } : { headers: jsonHeaders('alice'), body: JSON.stringify(body) }),
      });
      expect(response.status).toBe(201);
      return response.json();
    };
    const all = await mint();
    expect(Date.parse(all.expires_at)).toBeGreaterThan(Date.now());
    const stream = await SseClient.connect(`${server.url}${all.stream_url}`);
    expect(stream.response.status).toBe(200);
    await createAs('bob', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const mine = await createAs('alice', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    await stream.waitFor((events) => events.some((event) => event.event === 'task_completed'), 'alice\'s task_completed');
    stream.close();
    expect(new Set(stream.events.map((event) => event.json.task_id))).toEqual(new Set([mine.task_id]));

    const chosen = await createAs('alice', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const scoped = await mint({ task_ids: [chosen.task_id] });
    expect(scoped.stream_url).toContain(`task_id=${chosen.task_id}`);
    const scopedStream = await SseClient.connect(`${server.url}${scoped.stream_url}`);
    const events = await scopedStream.untilEnd();
    expect(events.at(-1)!.event).toBe('task_completed');
    // Without the task_id filter, a scoped token streams exactly its tasks.
    const token = new URL(scoped.stream_url, server.url).searchParams.get('token')!;
    const implicit = await SseClient.connect(`${server.url}/api/events?token=${token}`);
    const replayed = await implicit.untilEnd();
    expect(replayed.map((event) => event.json.task_id)).toEqual(events.map((event) => event.json.task_id));
    expect(replayed.at(-1)!.event).toBe('task_completed');
  });

  it('gives the snapshot in task_created on the all-tasks stream a stream_url with its token, live and replayed', async () => {
    server = await startTestServer({ API_KEYS });
    const all = await SseClient.connect(`${server.url}/api/events`, bearer('alice'));
    expect(all.response.status).toBe(200);
    const task = await createAs('alice', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const created = (await all.waitFor((events) => events.some((event) => event.event === 'task_created'), 'task_created'))
      .find((event) => event.event === 'task_created')!;
    all.close();
    const url: string = created.json.data.task.stream_url;
    expect(url).toMatch(new RegExp(`^/api/tasks/${task.task_id}/events\\?token=st1\\.`));
    // It opens the task's stream with no headers, as EventSource would.
    const events = await (await SseClient.connect(`${server.url}${url}`)).untilEnd('the task stream opened by its token');
    expect(events.at(-1)!.event).toBe('task_completed');

    // A client resuming the all-tasks stream gets the same kind of snapshot in the replay.
    const before = Number(created.id) - 1;
    const resumed = await SseClient.connect(`${server.url}/api/events`, { ...bearer('alice'), 'last-event-id': String(before) });
    const replayed = await resumed.waitFor((got) => got.some((event) => event.event === 'task_created'), 'the replayed task_created');
    resumed.close();
    const again = replayed.find((event) => event.event === 'task_created')!;
    expect(again.id).toBe(created.id);
    expect(again.json.data.task.stream_url).toMatch(/\?token=st1\./);
  });

  it('refuses a token once it has expired', () => {
    let now = 1_000_000;
    const tokens = new StreamTokens({ secret: '', ttlMs: 1000, now: () => now });
    const { token } = tokens.mint('alice', ['t']);
    expect(tokens.verify(token)).toMatchObject({ owner: 'alice', taskIds: ['t'] });
    now += 1000;
    expect(tokens.verify(token)).toBeUndefined();
    // Another service's secret does not verify it.
    expect(new StreamTokens({ secret: '', ttlMs: 1000, now: () => 0 }).verify(token)).toBeUndefined();
  });

  it('never writes a key or a token to the request log', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    server = await startTestServer({ API_KEYS, LOG_LEVEL: 'info' }, { logger: pino({ level: 'info' }, sink) });
    const task = await createAs('alice', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const stream = await SseClient.connect(`${server.url}${task.stream_url}`);
    await stream.untilEnd();
    await server.api('/api/tasks', { headers: { authorization: 'Bearer wrong-key-0123456789' } });
    const token = new URL(task.stream_url, server.url).searchParams.get('token')!;
    await until(() => lines.filter((line) => line.includes('"request"')).length >= 3, 'three request log lines');
    const log = lines.join('');
    for (const secret of [KEYS.alice, 'wrong-key-0123456789', token, token.split('.')[2]!]) {
      expect(log).not.toContain(secret);
    }
  });
});

describe('CORS', () => {
  it('allows only the listed origins, never with credentials', async () => {
    server = await startTestServer({ CORS_ORIGINS: 'https://app.example' });
    const preflight = (origin: string) =>
      server!.api('/api/tasks', {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
    const allowed = await preflight('https://app.example');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
    const refused = await preflight('https://evil.example');
    expect(refused.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
    const simple = await server.api('/api/tasks', { headers: { origin: 'https://app.example' } });
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(simple.headers.get('access-control-expose-headers')).toMatch(/location/);
  });

  it('sends no CORS headers at all by default, and * without credentials when asked', async () => {
    server = await startTestServer();
    const response = await server.api('/api/tasks', { headers: { origin: 'https://app.example' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    await server.close();
    server = await startTestServer({ CORS_ORIGINS: '*' });
    const any = await server.api('/api/tasks', { headers: { origin: 'https://app.example' } });
    expect(any.headers.get('access-control-allow-origin')).toBe('*');
    expect(any.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('limits', () => {
  it('answers 429 with Retry-After past MAX_STREAMS, and admits again once one closes', async () => {
    server = await startTestServer({ MAX_STREAMS: '2' });
    const task = await server.create({ type: 'block', input: {} });
    const open = [
      await SseClient.connect(`${server.url}${task.stream_url}`),
      await SseClient.connect(`${server.url}/api/events`),
    ];
    const refused = await server.api(task.stream_url);
    await expectProblem(refused, 429, 'too_many_streams');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Plain requests are not streams: they still work.
    expect((await server.api(`/api/tasks/${task.task_id}`)).status).toBe(200);
    open[0]!.close();
    await until(() => server!.hub.size === 1, 'the closed stream to be released');
    const again = await SseClient.connect(`${server.url}${task.stream_url}`);
    expect(again.response.status).toBe(200);
    again.close();
    open[1]!.close();
  });

  it('caps streams per owner without affecting another owner', async () => {
    server = await startTestServer({ API_KEYS, MAX_STREAMS_PER_OWNER: '1' });
    const first = await SseClient.connect(`${server.url}/api/events`, bearer('alice'));
    expect(first.response.status).toBe(200);
    await expectProblem(await server.api('/api/events', { headers: bearer('alice') }), 429, 'too_many_streams');
    const bobs = await SseClient.connect(`${server.url}/api/events`, bearer('bob'));
    expect(bobs.response.status).toBe(200);
    const stats: any = await (await server.api('/api/tasks/stats', { headers: bearer('alice') })).json();
    expect(stats.streams).toBe(1);
    first.close();
    bobs.close();
  });

  it('evicts the oldest ended task to stay within MAX_RETAINED_TASKS, and answers 503 when none has ended', async () => {
    server = await startTestServer({ MAX_RETAINED_TASKS: '3', MAX_WORKERS: '1' });
    const done = [];
    for (let i = 0; i < 2; i++) {
      const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
      await server.api(`/api/tasks/${task.task_id}/wait?timeout_ms=20000`);
      done.push(task);
    }
    const running = await server.create({ type: 'block', input: {} });
    // Full: the oldest ended task makes room, then the next oldest.
    const queued = await server.create({ type: 'block', input: {} });
    expect((await server.api(`/api/tasks/${done[0].task_id}`)).status).toBe(404);
    expect((await server.api(`/api/tasks/${done[1].task_id}`)).status).toBe(200);
    await server.create({ type: 'block', input: {} });
    expect((await server.api(`/api/tasks/${done[1].task_id}`)).status).toBe(404);
    // Nothing has ended now: nothing can go, so nothing new is taken.
    const refused = await server.api('/api/tasks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'block', input: {} }),
    });
    await expectProblem(refused, 503, 'too_many_tasks');
    expect(refused.headers.get('retry-after')).not.toBeNull();
    const listed: any = await (await server.api('/api/tasks')).json();
    expect(listed.tasks).toHaveLength(3);
    expect((await server.api(`/api/tasks/${running.task_id}`)).status).toBe(200);
    expect((await server.api(`/api/tasks/${queued.task_id}`)).status).toBe(200);
  });
});

describe('request timeouts', () => {
  it('cuts a client that never finishes its headers, but not an open stream', async () => {
    server = await startTestServer({ HEADERS_TIMEOUT_MS: '500', REQUEST_TIMEOUT_MS: '500' });
    const task = await server.create({ type: 'block', input: {} });
    const stream = await SseClient.connect(`${server.url}${task.stream_url}`);
    let ended = false;
    void stream.ended.then(() => (ended = true));
    const { port } = new URL(server.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const answer: Buffer[] = [];
    socket.on('data', (chunk) => answer.push(chunk));
    // Node closes it once the headers timeout has passed (its check runs about every second).
    await withTimeout(new Promise((resolve) => socket.once('close', resolve)), 'the slow socket to be closed', 15_000);
    expect(Buffer.concat(answer).toString()).toMatch(/^HTTP\/1\.1 408/);
    // The stream, open for longer than the request timeout by now, is still live.
    expect(ended).toBe(false);
    await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' });
    const events = await stream.untilEnd();
    expect(events.at(-1)!.event).toBe('task_cancelled');
    expect(ended).toBe(true);
  });
});

describe('the auth matrix: credential × route on alice\'s task', () => {
  it('lets alice\'s key do everything, her tokens only stream what they cover, and nothing else in', async () => {
    server = await startTestServer({ API_KEYS });
    const task = await createAs('alice', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    await waitEnded('alice', task.task_id);
    const bobsTask = await createAs('bob', { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const mint = async (owner: Owner, taskIds?: string[]) =>
      (
        (await (
          await server!.api('/api/stream-tokens', {
            method: 'POST',
            headers: jsonHeaders(owner),
            body: JSON.stringify(taskIds ? { task_ids: taskIds } : {}),
          })
        ).json()) as any
      ).token as string;
    const credentials: Record<string, { headers?: Record<string, string>; token?: string }> = {
      none: {},
      'wrong key': { headers: { authorization: 'Bearer not-a-key-0123456789' } },
      'alice key': { headers: bearer('alice') },
      'bob key': { headers: bearer('bob') },
      'alice task token': { token: new URL(task.stream_url, server.url).searchParams.get('token')! },
      'alice stream token': { token: await mint('alice') },
      'bob task token': { token: new URL(bobsTask.stream_url, server.url).searchParams.get('token')! },
      'bob stream token': { token: await mint('bob') },
    };
    const id = task.task_id;
    // Each route, and which credentials may use it on alice's task (the rest must fail).
    const routes: { method: string; path: string; allowed: string[] }[] = [
      { method: 'GET', path: `/api/tasks/${id}`, allowed: ['alice key'] },
      { method: 'GET', path: `/api/tasks/${id}/events`, allowed: ['alice key', 'alice task token', 'alice stream token'] },
      { method: 'GET', path: `/api/events?task_id=${id}`, allowed: ['alice key', 'alice task token', 'alice stream token'] },
      { method: 'GET', path: `/api/tasks/${id}/wait?timeout_ms=0`, allowed: ['alice key'] },
      { method: 'POST', path: `/api/tasks/${id}/retry`, allowed: [] }, // completed: 409 even for alice
      { method: 'POST', path: `/api/tasks/${id}/cancel`, allowed: [] }, // ended: 409 even for alice
    ];
    const outcomes: string[] = [];
    for (const route of routes) {
      for (const [name, credential] of Object.entries(credentials)) {
        const separator = route.path.includes('?') ? '&' : '?';
        const url = credential.token ? `${route.path}${separator}token=${encodeURIComponent(credential.token)}` : route.path;
        const response = await server.api(url, { method: route.method, headers: credential.headers ?? {} });
        const status = response.status;
        await response.body?.cancel();
        const ok = status >= 200 && status < 300;
        const expectedOk = route.allowed.includes(name);
        if (ok !== expectedOk) outcomes.push(`${name} ${route.method} ${route.path} → ${status}`);
        // Alice's own key on an ended task gets 409, which still shows she may see it.
        if (name === 'alice key' && !ok) expect(status, `${route.method} ${route.path}`).toBe(409);
        if (!ok && name !== 'alice key') expect([401, 404]).toContain(status);
      }
    }
    expect(outcomes, 'credentials that got an unexpected answer').toEqual([]);

    // Deleting: only alice's key, and only once.
    for (const name of ['none', 'wrong key', 'bob key', 'alice task token', 'alice stream token']) {
      const credential = credentials[name]!;
      const url = credential.token ? `/api/tasks/${id}?token=${credential.token}` : `/api/tasks/${id}`;
      const response = await server.api(url, { method: 'DELETE', headers: credential.headers ?? {} });
      expect([401, 404], name).toContain(response.status);
    }
    expect((await server.api(`/api/tasks/${id}`, { method: 'DELETE', headers: bearer('alice') })).status).toBe(204);
  });
});

describe('service-wide operations', () => {
  it('lets only ADMIN_OWNERS pause, resume and run the reaper when keys are on', async () => {
    server = await startTestServer({ API_KEYS, ADMIN_OWNERS: 'bob' });
    for (const path of ['/api/queue/pause', '/api/queue/resume', '/api/reaper/run']) {
      await expectProblem(await server.api(path, { method: 'POST', headers: bearer('alice') }), 403, 'forbidden');
      expect((await server.api(path, { method: 'POST', headers: bearer('bob') })).status, path).toBe(200);
    }
    // Reading the reaper's status is harmless: anyone with a key.
    expect((await server.api('/api/reaper', { headers: bearer('alice') })).status).toBe(200);
  });
});

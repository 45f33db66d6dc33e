import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Clock } from '../../src/reaper.ts';
import { startTestServer, type ServiceMode, type TestServer } from './server.ts';
import { SseClient, type SseEvent } from './sse.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  errors?: { pointer: string; detail: string }[];
}

export const JSON_HEADERS = { 'content-type': 'application/json' };
export const TERMINAL_EVENTS = ['task_completed', 'task_failed', 'task_cancelled'];
export const isTerminalEvent = (event: SseEvent) => TERMINAL_EVENTS.includes(event.event ?? '');
export const hasType = (type: string) => (events: SseEvent[]) => events.some((event) => event.event === type);
export const ofType = (events: readonly SseEvent[], type: string) => events.filter((event) => event.event === type);

/** A response's JSON body, untyped: tests assert its shape. */
export const json = (response: Response): Promise<any> => response.json();

export const pointers = (problem: Problem) => (problem.errors ?? []).map((error) => error.pointer);

/** Asserts an RFC 9457 answer with our code; returns its body. */
export async function expectProblem(response: Response, status: number, code?: string): Promise<Problem> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(text) as Problem;
  expect(problem).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  expect(text).not.toMatch(/node_modules|file:\/\/|\/work\/|\.ts:\d+/);
  if (code !== undefined) expect(problem.code).toBe(code);
  return problem;
}

/**
 * Everything one test opens: servers, SSE clients and gate directories. `close()` (in
 * afterEach) ends them all, whether the test passed or not.
 */
export class Harness {
  readonly #servers: TestServer[] = [];
  readonly #clients: SseClient[] = [];
  readonly #dirs: string[] = [];

  async serve(env: Record<string, string> = {}, options: { clock?: Clock; mode?: ServiceMode } = {}): Promise<TestServer> {
    const server = await startTestServer(env, options);
    this.#servers.push(server);
    return server;
  }

  /** Opens an SSE stream on `path` (asserting 200). */
  async connect(server: TestServer, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = await SseClient.connect(`${server.url}${path}`, headers);
    this.#clients.push(client);
    expect(client.response.status, path).toBe(200);
    return client;
  }

  /** A fresh directory for a `gate` or `flaky` task; `touch(dir, name)` moves it on. */
  dir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'taskstream-features-'));
    this.#dirs.push(dir);
    return dir;
  }

  async close(): Promise<void> {
    for (const client of this.#clients.splice(0)) client.close();
    await Promise.all(this.#servers.splice(0).map((server) => server.close()));
    for (const dir of this.#dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

export const touch = (dir: string, name: string) => writeFileSync(join(dir, name), '');

export const post = (server: TestServer, path: string, body?: unknown, headers: Record<string, string> = JSON_HEADERS) =>
  server.api(path, {
    method: 'POST',
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });

export async function snapshotOf(server: TestServer, taskId: string): Promise<any> {
  const response = await server.api(`/api/tasks/${taskId}`);
  expect(response.status, `GET task ${taskId}`).toBe(200);
  return json(response);
}

export async function cancel(server: TestServer, taskId: string): Promise<any> {
  const response = await post(server, `/api/tasks/${taskId}/cancel`);
  const body = await json(response);
  expect(response.status, JSON.stringify(body)).toBe(202);
  return body;
}

/**
 * The stream's rules for every task: ids 1, 2, 3… matching each envelope's seq, and
 * exactly one terminal event, the last one.
 */
export function expectWellFormed(events: readonly SseEvent[], taskId: string): void {
  expect(events.map((event) => event.id)).toEqual(events.map((_, index) => String(index + 1)));
  for (const event of events) {
    expect(event.json).toMatchObject({ event_type: event.event, task_id: taskId, seq: Number(event.id) });
  }
  expect(events.filter(isTerminalEvent), `terminal events in ${events.map((e) => e.event).join(', ')}`).toHaveLength(1);
  expect(isTerminalEvent(events.at(-1)!)).toBe(true);
}

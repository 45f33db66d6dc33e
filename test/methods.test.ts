import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/harness.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A known path, a method it does not answer, and exactly what `Allow` must list. */
const WRONG_METHODS: [method: string, path: string, allow: string][] = [
  ['PUT', '/api/tasks', 'DELETE, GET, HEAD, POST'],
  ['PATCH', `/api/tasks/${UNKNOWN_ID}`, 'DELETE, GET, HEAD'],
  ['GET', `/api/tasks/${UNKNOWN_ID}/cancel`, 'POST'],
  ['DELETE', `/api/tasks/${UNKNOWN_ID}/retry`, 'POST'],
  ['POST', `/api/tasks/${UNKNOWN_ID}/wait`, 'GET, HEAD'],
  ['POST', `/api/tasks/${UNKNOWN_ID}/events`, 'GET'],
  ['HEAD', `/api/tasks/${UNKNOWN_ID}/events`, 'GET'],
  ['DELETE', '/api/events', 'GET'],
  ['HEAD', '/api/events', 'GET'],
  ['POST', '/api/tasks/stats', 'DELETE, GET, HEAD'], // also matches /api/tasks/{task_id}
  ['GET', '/api/queue/pause', 'POST'],
  ['PUT', '/api/reaper', 'GET, HEAD'],
  ['GET', '/api/stream-tokens', 'POST'],
  ['POST', '/healthz', 'GET, HEAD'],
  ['DELETE', '/openapi.yaml', 'GET, HEAD'],
  ['POST', '/', 'GET, HEAD'],
];

describe('a method a known path does not answer', () => {
  it('answers 405 with Allow listing exactly the methods the path answers', async () => {
    server = await startTestServer();
    for (const [method, path, allow] of WRONG_METHODS) {
      const response = await server.api(path, { method });
      const where = `${method} ${path}`;
      expect(response.headers.get('allow'), where).toBe(allow);
      if (method === 'HEAD') {
        expect(response.status, where).toBe(405);
        expect(response.headers.get('content-type'), where).toMatch(/^application\/problem\+json/);
      } else {
        const problem = await expectProblem(response, 405, 'method_not_allowed');
        expect(problem.detail, where).toContain(method);
      }
    }
  });

  it('lists only methods that are routed: none of them answers 405 or "no route"', async () => {
    server = await startTestServer();
    for (const [, path, allow] of WRONG_METHODS) {
      for (const method of allow.split(', ')) {
        // An ended-task delete, an empty create, a cancel of an unknown task: refused, but routed.
        const response = await server.api(path, { method, signal: AbortSignal.timeout(5_000) });
        const where = `${method} ${path}`;
        expect(response.status, where).not.toBe(405);
        if (method !== 'HEAD' && response.headers.get('content-type')?.startsWith('application/problem+json')) {
          expect(((await response.json()) as { code?: string }).code, where).not.toBe('not_found');
        } else {
          await response.body?.cancel(); // an event stream does not end by itself
        }
      }
    }
  });

  it('still answers 404, with no Allow, for a path no route matches', async () => {
    server = await startTestServer();
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['PUT', '/api/tasks/x/y/z'],
      ['DELETE', '/nope'],
      ['GET', '/missing-file.js'], // matches the dashboard's asset route, but there is no such file
    ] as const) {
      const response = await server.api(path, { method });
      expect(response.headers.get('allow'), `${method} ${path}`).toBeNull();
      await expectProblem(response, 404, 'not_found');
    }
  });

  it('with keys on, asks for a key first and answers 405 to a caller who has one', async () => {
    server = await startTestServer({ API_KEYS: 'alice:alice-key-0123456789' });
    await expectProblem(await server.api('/api/tasks', { method: 'PUT' }), 401, 'unauthorized');
    const response = await server.api('/api/tasks', { method: 'PUT', headers: { authorization: 'Bearer alice-key-0123456789' } });
    expect(response.headers.get('allow')).toBe('DELETE, GET, HEAD, POST');
    await expectProblem(response, 405, 'method_not_allowed');
  });
});

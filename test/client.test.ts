import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EventSource, type FetchLike } from 'eventsource';
import ts from 'typescript';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { createTaskstreamClient, type Problem, type Task, type TaskStatus } from '../client/index.ts';
import { watchTask } from '../examples/browser-stream.js';
import { runSampleTask } from '../examples/typed-client.ts';
import { projectRoot } from './helpers/process.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { withTimeout } from './helpers/timeout.ts';

const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';

let server: TestServer | undefined;
const sources: EventSource[] = [];
afterEach(async () => {
  for (const source of sources.splice(0)) source.close();
  await server?.close();
  server = undefined;
});

describe('the typed client', () => {
  it('creates, reads, lists, cancels and deletes tasks', async () => {
    server = await startTestServer();
    const api = createTaskstreamClient(server.url);

    const created = await api.POST('/api/tasks', {
      body: { type: 'sample', input: { steps: 1000, step_ms: 60_000 } },
    });
    expect(created.response.status).toBe(201);
    if (!created.data) throw new Error(`create failed: ${JSON.stringify(created.error)}`);
    expectTypeOf(created.data).toEqualTypeOf<Task>();
    const taskId: string = created.data.task_id;
    const status: TaskStatus = created.data.status;
    const streamUrl: string = created.data.stream_url;
    expect(created.response.headers.get('location')).toBe(`/api/tasks/${taskId}`);
    expect(['queued', 'running']).toContain(status);
    expect(streamUrl).toBe(`/api/tasks/${taskId}/events`);
    expect(created.data.input).toEqual({ steps: 1000, step_ms: 60_000 });

    const read = await api.GET('/api/tasks/{task_id}', { params: { path: { task_id: taskId } } });
    expect(read.response.status).toBe(200);
    expect(read.data?.task_id).toBe(taskId);
    expect(read.data?.type).toBe('sample');

    // Three that complete, to page through with a status filter.
    const completedIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const quick = await api.POST('/api/tasks', { body: { type: 'sample', input: { steps: 1, step_ms: 0 } } });
      if (!quick.data) throw new Error(`create failed: ${JSON.stringify(quick.error)}`);
      const ended = await withTimeout(
        api.GET('/api/tasks/{task_id}/wait', {
          params: { path: { task_id: quick.data.task_id }, query: { timeout_ms: 10_000 } },
        }),
        `quick task ${i + 1} to end`,
        15_000,
      );
      expect(ended.data?.status).toBe('completed');
      expect(ended.data?.result).toEqual({ steps_completed: 1 });
      completedIds.push(quick.data.task_id);
    }
    const newestFirst = [...completedIds].reverse();

    const page1 = await api.GET('/api/tasks', { params: { query: { status: 'completed', limit: 2 } } });
    expect(page1.response.status).toBe(200);
    if (!page1.data) throw new Error(`list failed: ${JSON.stringify(page1.error)}`);
    const cursor: string | null = page1.data.next_cursor;
    expect(page1.data.tasks.map((task) => task.task_id)).toEqual(newestFirst.slice(0, 2));
    expect(cursor).toEqual(expect.any(String));
    const page2 = await api.GET('/api/tasks', {
      params: { query: { status: 'completed', limit: 2, cursor: cursor ?? undefined } },
    });
    expect(page2.data?.tasks.map((task) => task.task_id)).toEqual(newestFirst.slice(2));
    expect(page2.data?.next_cursor).toBeNull();
    const all = await api.GET('/api/tasks', { params: { query: { type: 'sample' } } });
    expect(all.data?.tasks.map((task) => task.task_id)).toEqual([...newestFirst, taskId]);

    const cancelled = await api.POST('/api/tasks/{task_id}/cancel', { params: { path: { task_id: taskId } } });
    expect(cancelled.response.status).toBe(202);
    expectTypeOf(cancelled.data).toEqualTypeOf<Task | undefined>();
    expect(cancelled.data?.task_id).toBe(taskId);
    const ended = await withTimeout(
      api.GET('/api/tasks/{task_id}/wait', { params: { path: { task_id: taskId }, query: { timeout_ms: 10_000 } } }),
      'the cancelled task to end',
      15_000,
    );
    expect(ended.data?.status).toBe('cancelled');

    const removed = await api.DELETE('/api/tasks/{task_id}', { params: { path: { task_id: taskId } } });
    expect(removed.response.status).toBe(204);
    expect(removed.error).toBeUndefined();
    const gone = await api.GET('/api/tasks/{task_id}', { params: { path: { task_id: taskId } } });
    expect(gone.response.status).toBe(404);
    expect(gone.error?.code).toBe('task_not_found');
  });

  it('answers errors as typed problems', async () => {
    server = await startTestServer();
    const api = createTaskstreamClient(server.url);

    const invalid = await api.POST('/api/tasks', { body: { type: 'sample', input: { steps: 0 } } });
    expect(invalid.response.status).toBe(422);
    expect(invalid.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(invalid.data).toBeUndefined();
    // Each error answer is a Problem; some name the codes they carry (a 503 of create, say).
    expectTypeOf(invalid.error).toExtend<Problem | undefined>();
    const pointer: string | undefined = invalid.error?.errors?.[0]?.pointer;
    expect(pointer).toBe('/input/steps');
    expect(invalid.error).toMatchObject({ status: 422, code: 'validation_failed', instance: '/api/tasks' });

    const unknown = await api.GET('/api/tasks/{task_id}', { params: { path: { task_id: UNKNOWN_ID } } });
    expect(unknown.response.status).toBe(404);
    const code: string | undefined = unknown.error?.code;
    expect(code).toBe('task_not_found');

    const ended = await api.POST('/api/tasks', { body: { type: 'sample', input: { steps: 1, step_ms: 0 } } });
    const taskId = ended.data!.task_id;
    await withTimeout(
      api.GET('/api/tasks/{task_id}/wait', { params: { path: { task_id: taskId }, query: { timeout_ms: 10_000 } } }),
      'the task to end',
      15_000,
    );
    const late = await api.POST('/api/tasks/{task_id}/cancel', { params: { path: { task_id: taskId } } });
    expect(late.response.status).toBe(409);
    expect(late.error?.code).toBe('task_already_ended');
  });

  it('rejects at compile time what the spec does not allow', { timeout: 60_000 }, () => {
    // Compiled for real: each misuse must be a type error on its own line, and a correct call
    // beside them must compile, so a spec or client that lets one through fails here.
    const misuses = [
      ['no such path', `void api.GET('/api/no-such-route');`],
      ['`steps` is a number', `void api.POST('/api/tasks', { body: { type: 'sample', input: { steps: 'five' } } });`],
      ['not a task type', `void api.POST('/api/tasks', { body: { type: 'resize', input: {} } });`],
      ['the path parameter is required', `void api.GET('/api/tasks/{task_id}', {});`],
      ['not one of your own task types', `void mine.POST('/api/tasks', { body: { type: 'sample', input: {} } });`],
    ] as const;
    // Your own API, as openapi-typescript generates it from `npx taskstream openapi --tasks …`.
    const yourPaths = [
      `interface YourPaths { '/api/tasks': { parameters: { query?: never; header?: never; path?: never; cookie?: never };`,
      `  post: { parameters: { query?: never; header?: never; path?: never; cookie?: never };`,
      `    requestBody: { content: { 'application/json': { type: 'resize'; input: { id: string; width: number } } } };`,
      `    responses: { 201: { headers: { [name: string]: unknown }; content: { 'application/json': { task_id: string } } } } } } }`,
    ];
    const header = [
      `import { createClient, createTaskstreamClient } from ${JSON.stringify(join(projectRoot, 'client/index.ts'))};`,
      `const api = createTaskstreamClient('http://127.0.0.1:1');`,
      `void api.GET('/api/tasks/{task_id}', { params: { path: { task_id: 'x' } } });`,
      ...yourPaths,
      `const mine = createClient<YourPaths>('http://127.0.0.1:1');`,
      `void mine.POST('/api/tasks', { body: { type: 'resize', input: { id: 'cat', width: 640 } } });`,
    ];
    const dir = mkdtempSync(join(tmpdir(), 'taskstream-compile-'));
    try {
      const file = join(dir, 'misuse.ts');
      writeFileSync(file, [...header, ...misuses.map(([, line]) => line)].join('\n'));
      const program = ts.createProgram([file], {
        target: ts.ScriptTarget.ES2023,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        types: [],
      });
      const errorLines = ts
        .getPreEmitDiagnostics(program)
        .filter((diagnostic) => diagnostic.file?.fileName === file && diagnostic.start !== undefined)
        .map((diagnostic) => diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start!).line);
      for (const [index, [what]] of misuses.entries()) {
        expect(errorLines, `a type error for: ${what}`).toContain(header.length + index);
      }
      expect(errorLines.filter((line) => line < header.length), 'the correct calls compile').toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('client/schema.d.ts', () => {
  it('is what `npm run client` generates from openapi.yaml (regenerate with `npm run client`)', async () => {
    const script = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).scripts.client as string;
    const [command, ...args] = script.split(' ');
    expect(command).toBe('openapi-typescript');
    expect(args).toEqual(expect.arrayContaining(['--default-non-nullable', 'false']));
    const output = args.indexOf('-o') + 1;
    expect(args[output]).toBe('client/schema.d.ts');

    const dir = mkdtempSync(join(tmpdir(), 'taskstream-client-'));
    try {
      const target = join(dir, 'schema.d.ts');
      args[output] = target;
      const pkgFile = createRequire(import.meta.url).resolve('openapi-typescript/package.json');
      const bin = join(dirname(pkgFile), JSON.parse(readFileSync(pkgFile, 'utf8')).bin['openapi-typescript']);
      const child = spawn(process.execPath, [bin, ...args], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const code = await withTimeout(
        new Promise<number | null>((resolve) => child.once('exit', resolve)),
        'openapi-typescript to generate the schema',
        30_000,
      );
      expect(code, stderr).toBe(0);
      const committed = readFileSync(join(projectRoot, 'client/schema.d.ts'), 'utf8');
      expect(readFileSync(target, 'utf8')).toBe(committed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the README examples', () => {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');

  it.each([
    ['examples/typed-client.ts', 'ts'],
    ['examples/browser-stream.js', 'js'],
  ])('README shows %s verbatim', (file, language) => {
    const text = readFileSync(join(projectRoot, file), 'utf8');
    expect(readme).toContain(`\`\`\`${language}\n${text}\`\`\`\n`);
  });

  it('typed client: starts a sample task and gets it back completed', async () => {
    server = await startTestServer();
    const task = await withTimeout(runSampleTask(server.url), 'the typed-client example to finish', 20_000);
    expect(task).toMatchObject({ type: 'sample', status: 'completed', result: { steps_completed: 3 } });
  });

  it('browser: reports progress, then exactly one terminal event, and closes', async () => {
    server = await startTestServer();
    const task = await server.create({ type: 'sample', input: { steps: 3, step_ms: 10 } });
    const progress: (string | null)[] = [];
    const ends: [string, unknown][] = [];
    let errors = 0;
    let source!: EventSource;
    await withTimeout(
      new Promise<void>((resolve) => {
        source = watchTask(
          `${server!.url}${task.stream_url}`,
          {
            onProgress: (data) => progress.push(data.text),
            onEnd: (type, data) => {
              ends.push([type, data]);
              resolve();
            },
            onError: () => errors++,
          },
          EventSource,
        );
        sources.push(source);
      }),
      'the terminal event',
    );
    expect(progress).toEqual(['Step 1/3', 'Step 2/3', 'Step 3/3']);
    expect(ends).toEqual([['task_completed', { result: { steps_completed: 3 } }]]);
    expect(source.readyState).toBe(EventSource.CLOSED);
    expect(errors).toBe(0);
  });

  it('browser: after a dropped connection, resumes with no duplicates and no gaps', async () => {
    server = await startTestServer({ SSE_RETRY_MS: '10' });
    const task = await server.create({ type: 'block', input: { progress: 3 } });
    const lastEventIds: (string | null)[] = [];
    const dropAfterFirstProgress: FetchLike = async (url, init) => {
      lastEventIds.push(init.headers['Last-Event-ID'] ?? null);
      const response = await fetch(url, init);
      return lastEventIds.length === 1 ? cutAfterFirstProgress(response) : response;
    };
    class DroppingEventSource extends EventSource {
      constructor(url: string) {
        super(url, { fetch: dropAfterFirstProgress });
      }
    }

    const progress: (string | null)[] = [];
    let onThird!: () => void;
    const thirdProgress = new Promise<void>((resolve) => (onThird = resolve));
    let onEnd!: (end: [string, unknown]) => void;
    const end = new Promise<[string, unknown]>((resolve) => (onEnd = resolve));
    const source = watchTask(
      `${server.url}${task.stream_url}`,
      {
        onProgress: (data) => {
          progress.push(data.text);
          if (progress.length === 3) onThird();
        },
        onEnd: (type, data) => onEnd([type, data]),
      },
      DroppingEventSource,
    );
    sources.push(source);

    await withTimeout(thirdProgress, 'all three progress updates, across the reconnect');
    // The first connection ended after event 2 (task_started is 1); the reconnect resumed there.
    expect(lastEventIds).toEqual([null, '2']);
    expect((await server.api(`/api/tasks/${task.task_id}/cancel`, { method: 'POST' })).status).toBe(202);
    expect(await withTimeout(end, 'task_cancelled')).toEqual(['task_cancelled', { reason: 'requested' }]);
    expect(progress).toEqual(['step 1', 'step 2', 'step 3']);
    expect(source.readyState).toBe(EventSource.CLOSED);
  });

  it('browser: reports a stream that the server refuses (unknown task) as closed', async () => {
    server = await startTestServer();
    let progressCount = 0;
    let endCount = 0;
    let source!: EventSource;
    await withTimeout(
      new Promise<void>((resolve) => {
        source = watchTask(
          `${server!.url}/api/tasks/${UNKNOWN_ID}/events`,
          { onProgress: () => progressCount++, onEnd: () => endCount++, onError: resolve },
          EventSource,
        );
        sources.push(source);
      }),
      'the stream to be reported closed',
    );
    expect(source.readyState).toBe(EventSource.CLOSED);
    expect([progressCount, endCount]).toEqual([0, 0]);
  });
});

/**
 * The response as a dropped connection would leave it: its body carries the frames up to and
 * including the first `progress_update`, then fails.
 */
function cutAfterFirstProgress(response: Response): Response {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let received = '';
  let cut = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Failing only on the next pull lets the reader take the last chunk first: an error
      // discards whatever is still queued.
      if (cut) {
        await reader.cancel();
        controller.error(new Error('connection dropped'));
        return;
      }
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended before its first progress_update');
        received += decoder.decode(value, { stream: true });
        const frame = received.indexOf('event: progress_update\n');
        const frameEnd = frame === -1 ? -1 : received.indexOf('\n\n', frame);
        if (frameEnd !== -1) {
          controller.enqueue(new TextEncoder().encode(received.slice(0, frameEnd + 2)));
          cut = true;
          return;
        }
      }
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSnapshot } from '../src/task-record.ts';
import { launchChromium, SCREENSHOTS } from './helpers/chromium.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SseClient } from './helpers/sse.ts';
import { until, withTimeout } from './helpers/timeout.ts';

let browser: Browser | undefined;
let context: BrowserContext | undefined;
const servers: TestServer[] = [];

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  for (const server of servers.splice(0)) await server.close();
});

afterAll(async () => {
  await browser?.close();
});

async function start(env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

/** What the page did, recorded from before its first request. */
interface OpenDashboard {
  page: Page;
  requests: string[];
  consoleErrors: string[];
}

/** Opens the dashboard of `server` and waits until it is live and has loaded the list. */
async function openDashboard(server: TestServer, viewport = { width: 1000, height: 800 }): Promise<OpenDashboard> {
  // Reduced motion: the bars jump to their values, so screenshots show the state as it is.
  context = await browser!.newContext({ viewport, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
  await page.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (event) => {
      console.error('CSP violation: ' + event.violatedDirective + ' ' + event.blockedURI);
    });`,
  });
  await withTimeout(page.goto(server.url), 'the dashboard to load');
  await live(page);
  return { page, requests, consoleErrors };
}

/** Waits until `locator` is visible, failing with `label` after `ms`. */
async function shown(locator: Locator, label: string, ms = 10_000): Promise<void> {
  await withTimeout(locator.first().waitFor({ state: 'visible', timeout: ms + 5_000 }), label, ms);
}

async function gone(locator: Locator, label: string, ms = 10_000): Promise<void> {
  await withTimeout(locator.waitFor({ state: 'detached', timeout: ms + 5_000 }), label, ms);
}

/** Waits for the stream to be open and the list loaded. */
async function live(page: Page, ms = 10_000): Promise<void> {
  await shown(page.locator('#connection[data-state="live"]'), 'the stream to be live', ms);
  await withTimeout(
    page.locator('#task-list[aria-busy="false"]').waitFor({ state: 'attached', timeout: ms + 5_000 }),
    'the task list to load',
    ms,
  );
}

const rowOf = (page: Page, taskId: string) => page.locator(`li.task[data-task-id="${taskId}"]`);
const badge = (row: Locator, text: string) => row.locator('.badge', { hasText: text });

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true, animations: 'disabled' });
}

async function listTasks(server: TestServer): Promise<TaskSnapshot[]> {
  return ((await (await server.api('/api/tasks')).json()) as { tasks: TaskSnapshot[] }).tasks;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('the dashboard', () => {
  it('starts a task from the form and shows its bar reach 100 % and its status completed', async () => {
    const server = await start();
    const { page } = await openDashboard(server);

    await page.getByLabel('Task type').selectOption('sample');
    await page.getByLabel('Steps', { exact: true }).fill('3');
    await page.getByLabel('Step (ms)').fill('100');
    await page.getByRole('button', { name: 'Start task' }).click();

    const row = page.locator('li.task').filter({ hasText: 'sample' });
    await shown(row, 'the new task\'s row');
    await shown(badge(row, 'Completed'), 'the task to complete');
    await shown(row.locator('progress[value="1"]'), 'a full progress bar');
    expect(await row.locator('.progress-text').textContent()).toBe('100 % · Step 3/3');
    expect(await row.getByRole('button', { name: /^Delete/ }).isVisible()).toBe(true);

    const tasks = await listTasks(server);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ type: 'sample', status: 'completed', input: { steps: 3, step_ms: 100 } });
    expect(await row.getAttribute('data-task-id')).toBe(tasks[0]!.task_id);
    await screenshot(page, 'start-and-complete');
  });

  it('cancels a running task with its button', async () => {
    const server = await start();
    const { page } = await openDashboard(server);
    const task = await server.create({ type: 'block', input: { progress: 1 } });
    const row = rowOf(page, task.task_id);
    await shown(badge(row, 'Running'), 'the task to run');
    await shown(row.locator('.progress-text', { hasText: '50 % · step 1' }), 'its progress');

    await row.getByRole('button', { name: `Cancel block ${task.task_id.slice(-8)}` }).click();
    await shown(badge(row, 'Cancelled'), 'the task to be cancelled');
    expect(await row.getByRole('button', { name: /^Cancel/ }).isHidden()).toBe(true);
    expect(((await (await server.api(`/api/tasks/${task.task_id}`)).json()) as TaskSnapshot).status).toBe('cancelled');

    // The filter shows only tasks of the chosen status.
    await page.getByRole('radio', { name: /^Running/ }).check();
    await shown(page.getByText('No running tasks.'), 'the empty running filter');
    expect(await row.isHidden()).toBe(true);
    await page.getByRole('radio', { name: /^Cancelled/ }).check();
    await shown(row, 'the cancelled task under its filter');
    await screenshot(page, 'cancel');
  });

  it('shows 20 running tasks progressing over one stream', async () => {
    const server = await start({ MAX_WORKERS: '20' });
    const { page, requests } = await openDashboard(server, { width: 1000, height: 1400 });
    const tasks = await Promise.all(
      // 100 s each: all 20 are still running when the last bar first moves, even when 20
      // threads start slowly on a loaded 2-core machine. The server cancels them at the end.
      Array.from({ length: 20 }, () => server.create({ type: 'sample', input: { steps: 200, step_ms: 500 } })),
    );

    // A bar with progress above 0 has a value attribute other than "0".
    const moving = page.locator('li.task progress[value]:not([value="0"])');
    await shown(moving.nth(tasks.length - 1), 'all 20 progress bars to move', 60_000);
    const running = await page.locator('li.task[data-status="running"]').count();
    const streams = server.hub.size;
    await screenshot(page, 'twenty-tasks');

    expect(await moving.count()).toBe(20);
    for (const task of tasks) expect(await rowOf(page, task.task_id).locator('progress[value]:not([value="0"])').count()).toBe(1);
    expect(running).toBe(20);
    // One EventSource for every task: one stream on the server, one request for it.
    expect(streams).toBe(1);
    expect(requests.filter((url) => new URL(url).pathname === '/api/events')).toHaveLength(1);
    expect(requests.filter((url) => new URL(url).pathname.includes('/events') && url.includes('/api/tasks/'))).toEqual([]);
  }, 90_000);

  it('shows the field error of a bad input next to the field', async () => {
    const server = await start();
    const { page } = await openDashboard(server);
    await page.getByLabel('Task type').selectOption('sample');
    const steps = page.getByLabel('Steps', { exact: true });
    await steps.fill('0');
    await page.getByRole('button', { name: 'Start task' }).click();

    const error = page.locator('[data-field="steps"] .field-error');
    await shown(error, 'the steps field error');
    expect(await error.textContent()).toBe('Too small: expected number to be >=1');
    expect(await steps.getAttribute('aria-invalid')).toBe('true');
    expect((await steps.getAttribute('aria-describedby'))?.split(' ')).toContain(await error.getAttribute('id'));
    expect(await page.getByRole('alert').filter({ hasText: 'The request body is not valid' }).isVisible()).toBe(true);
    expect(await page.locator('[data-field="step_ms"] .field-error').isHidden()).toBe(true);
    await screenshot(page, 'field-error');

    // The JSON editor shows the same errors under itself.
    await page.getByLabel('Edit the input as JSON').check();
    const editor = page.getByLabel('Input (JSON)');
    expect(JSON.parse(await editor.inputValue())).toEqual({ steps: 0, step_ms: 1000 });
    await editor.fill('{"steps": 2, "step_ms": -1}');
    await page.getByRole('button', { name: 'Start task' }).click();
    await shown(page.locator('#input-json-error', { hasText: 'step_ms: Too small: expected number to be >=0' }), 'the JSON editor error');
    expect(await editor.getAttribute('aria-invalid')).toBe('true');

    expect(await listTasks(server)).toEqual([]);
  });

  it('loads nothing from another origin and breaks no Content-Security-Policy', async () => {
    const server = await start();
    const html = await server.api('/');
    expect(html.headers.get('content-security-policy')).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    );
    expect(html.headers.get('x-content-type-options')).toBe('nosniff');
    const markup = await html.text();
    expect(markup).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
    expect(markup).not.toMatch(/\s(style|on[a-z]+)=/i);
    const script = await server.api('/app.js');
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await server.api('/package.json')).status).toBe(404);

    const { page, requests, consoleErrors } = await openDashboard(server, { width: 390, height: 844 });
    await page.getByLabel('Task type').selectOption('sample');
    await page.getByLabel('Steps', { exact: true }).fill('2');
    await page.getByLabel('Step (ms)').fill('50');
    await page.getByRole('button', { name: 'Start task' }).click();
    await shown(badge(page.locator('li.task'), 'Completed'), 'the task to complete');
    const running = await server.create({ type: 'block', input: { progress: 2 } });
    await shown(badge(rowOf(page, running.task_id), 'Running'), 'the block task to run');
    await page.getByLabel('Edit the input as JSON').check();
    await page.getByLabel('Edit the input as fields').check();
    await screenshot(page, 'narrow');

    expect(requests.length).toBeGreaterThan(4);
    for (const url of requests) expect(new URL(url).origin, url).toBe(server.url);
    expect(consoleErrors).toEqual([]);
  });

  it('deletes an ended task and its row goes', async () => {
    const server = await start();
    const { page } = await openDashboard(server);
    const kept = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const task = await server.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    const row = rowOf(page, task.task_id);
    await shown(badge(row, 'Completed'), 'the task to complete');
    await shown(badge(rowOf(page, kept.task_id), 'Completed'), 'the other task to complete');

    await row.getByRole('button', { name: /^Delete/ }).click();
    await gone(row, 'the deleted task\'s row to go');
    expect((await server.api(`/api/tasks/${task.task_id}`)).status).toBe(404);
    expect(await rowOf(page, kept.task_id).isVisible()).toBe(true);
    await screenshot(page, 'delete');
  });

  it('opens a new stream when one is refused, and reloads the list', async () => {
    // One stream in all, and a reconnect hint long enough for the test to take the place
    // the page's stream leaves: the page's own reconnect is then refused for real (429).
    const server = await start({ MAX_STREAMS: '1', SSE_RETRY_MS: '2000' });
    const { page, requests } = await openDashboard(server);
    const answers: number[] = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname === '/api/events') answers.push(response.status());
    });
    server.hub.endAll();
    const holder = await withTimeout(
      (async () => {
        for (;;) {
          const client = await SseClient.connect(`${server.url}/api/events`);
          if (client.response.status === 200) return client;
          client.close();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      'the only stream place, once the page\'s stream has ended',
    );
    try {
      await shown(page.locator('#connection[data-state="offline"]'), 'the page to show it is offline');
      await until(() => answers.length > 0, 'the answer to the page\'s reconnect');
      expect(answers).toEqual([429]);
      const task = await server.create({ type: 'block', input: {} });
      holder.close();
      await live(page);
      await shown(badge(rowOf(page, task.task_id), 'Running'), 'the task started while offline');
    } finally {
      holder.close();
    }
    await until(() => answers.at(-1) === 200, 'the answer to the page\'s new stream');
    // Refused until the place was free (more than once on a slow machine), then opened once.
    expect(answers.slice(0, -1).length).toBeGreaterThanOrEqual(1);
    expect(new Set(answers.slice(0, -1))).toEqual(new Set([429]));
    // The first stream, each refused reconnect, and the new one.
    expect(requests.filter((url) => new URL(url).pathname === '/api/events')).toHaveLength(answers.length + 1);
    expect(server.hub.size).toBe(1);
  });

  it('reconnects after the service restarts and shows the new service\'s tasks', async () => {
    const port = String(await freePort());
    const env = { PORT: port, SSE_RETRY_MS: '100' };
    const first = await start(env);
    const { page } = await openDashboard(first);
    const old = await first.create({ type: 'sample', input: { steps: 1, step_ms: 0 } });
    await shown(badge(rowOf(page, old.task_id), 'Completed'), 'the first service\'s task');

    await servers.splice(servers.indexOf(first), 1)[0]!.close();
    await shown(page.locator('#connection:not([data-state="live"])'), 'the page to notice the service is gone');

    const second = await start(env);
    const fresh = await second.create({ type: 'block', input: {} });
    await live(page, 20_000);
    await shown(badge(rowOf(page, fresh.task_id), 'Running'), 'the new service\'s task', 20_000);
    await gone(rowOf(page, old.task_id), 'the old service\'s task to go');
    expect(second.hub.size).toBe(1);
    await screenshot(page, 'after-restart');
  });
});

// The dashboard of createTaskstream's app mounted under /jobs in a host app, in a real browser:
// every module, request and stream stays under the mount path.
import { readdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTaskstream, type TaskstreamInstance } from '../src/create-taskstream.ts';
import { launchChromium } from './helpers/chromium.ts';
import { projectRoot } from './helpers/process.ts';
import { withTimeout } from './helpers/timeout.ts';

const USER_TASKS = 'test/fixtures/modules/user';
const KEY = 'alice-key-0123456789abcdef';

let browser: Browser | undefined;
let context: BrowserContext | undefined;
let tasks: TaskstreamInstance<any> | undefined;
let server: Server | undefined;

beforeAll(async () => {
  browser = await launchChromium();
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  server?.close();
  server?.closeAllConnections();
  server = undefined;
  await tasks?.shutdown(0);
  tasks = undefined;
});

afterAll(async () => {
  await browser?.close();
});

/** A host app with the service under /jobs and its own routes beside it; answers its origin. */
async function startMounted(options: { apiKeys?: string } = {}): Promise<string> {
  tasks = await createTaskstream({ tasks: [USER_TASKS], maxWorkers: 1, logLevel: 'silent', basePath: '/jobs', ...options });
  const host = new Hono();
  host.get('/', (c) => c.text('the host app'));
  host.route('/jobs', tasks.app);
  return withTimeout(
    new Promise<string>((resolve) => {
      server = serve({ fetch: host.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(`http://127.0.0.1:${info.port}`)) as Server;
    }),
    'the host app to listen',
  );
}

interface OpenPage {
  page: Page;
  requests: URL[];
  consoleErrors: string[];
}

async function openPage(url: string): Promise<OpenPage> {
  context = await browser!.newContext({ viewport: { width: 1000, height: 800 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const requests: URL[] = [];
  const consoleErrors: string[] = [];
  page.on('request', (request) => requests.push(new URL(request.url())));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
  await withTimeout(page.goto(url), 'the dashboard to load');
  return { page, requests, consoleErrors };
}

async function shown(locator: Locator, label: string, ms = 10_000): Promise<void> {
  await withTimeout(locator.first().waitFor({ state: 'visible', timeout: ms + 5_000 }), label, ms);
}

async function live(page: Page): Promise<void> {
  await shown(page.locator('#connection[data-state="live"]'), 'the stream to be live');
  await withTimeout(
    page.locator('#task-list[aria-busy="false"]').waitFor({ state: 'attached', timeout: 15_000 }),
    'the task list to load',
  );
}

const badge = (row: Locator, text: string) => row.locator('.badge', { hasText: text });

/** Starts a greet task from the form and waits for its row to show it completed. */
async function greetFromTheForm(page: Page, name: string): Promise<void> {
  await withTimeout(page.getByLabel('Task type').selectOption('greet'), 'the task types to load');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Start task' }).click();
  await shown(badge(page.locator('li.task').filter({ hasText: 'greet' }), 'Completed'), 'the greet task to complete');
}

/** Every request the page made went to the mount path, on this origin. */
function expectAllUnderMount(requests: URL[], origin: string): void {
  expect(requests.length).toBeGreaterThan(5);
  for (const url of requests) {
    expect(url.origin, url.href).toBe(origin);
    expect(url.pathname === '/jobs' || url.pathname.startsWith('/jobs/'), url.href).toBe(true);
  }
}

describe('the dashboard mounted under /jobs', () => {
  it('serves each of its modules as JavaScript under the mount path', async () => {
    const origin = await startMounted();
    const modules = readdirSync(`${projectRoot}/web`).filter((file) => file.endsWith('.js'));
    expect(modules.length).toBeGreaterThan(5);
    for (const file of modules) {
      const response = await fetch(`${origin}/jobs/${file}`);
      expect(response.status, file).toBe(200);
      expect(response.headers.get('content-type'), file).toMatch(/^text\/javascript/);
    }
  });

  it('loads, streams and starts tasks with every request under /jobs', async () => {
    const origin = await startMounted();
    const { page, requests, consoleErrors } = await openPage(`${origin}/jobs`);
    await live(page);
    await greetFromTheForm(page, 'Ada');

    // A task started elsewhere arrives over the page's stream.
    const other = await tasks!.start('double', { n: 21 });
    await shown(badge(page.locator(`li.task[data-task-id="${other.task_id}"]`), 'Completed'), 'the other task to complete');

    expectAllUnderMount(requests, origin);
    expect(requests.filter((url) => url.pathname === '/jobs/api/events')).toHaveLength(1);
    expect(consoleErrors).toEqual([]);
  });

  it('with API keys, takes a key and opens its stream with a token, all under /jobs', async () => {
    const origin = await startMounted({ apiKeys: `alice:${KEY}` });
    const { page, requests, consoleErrors } = await openPage(`${origin}/jobs`);
    await shown(page.getByRole('textbox', { name: 'API key' }), 'the key form');
    await page.getByRole('textbox', { name: 'API key' }).fill(KEY);
    await page.getByRole('button', { name: 'Use key' }).click();
    await live(page);
    await greetFromTheForm(page, 'Grace');

    expectAllUnderMount(requests, origin);
    const streams = requests.filter((url) => url.pathname === '/jobs/api/events');
    // The first, without a key, was refused; the one opened with the key carries a stream token.
    expect(streams.length).toBeGreaterThanOrEqual(2);
    expect(streams.at(-1)!.searchParams.get('token'), streams.at(-1)!.href).toBeTruthy();
    // The 401s that made the page ask for the key are expected; nothing else went wrong.
    expect(consoleErrors.filter((text) => !/401/.test(text))).toEqual([]);
  });
});

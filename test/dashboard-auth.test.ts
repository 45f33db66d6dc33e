import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSnapshot } from '../src/task-record.ts';
import { launchChromium, SCREENSHOTS } from './helpers/chromium.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { until, withTimeout } from './helpers/timeout.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-fedcba9876543210';
const API_KEYS = `alice:${ALICE},bob:${BOB}`;
/** Where the dashboard and /docs keep the key (sessionStorage). */
const KEY_STORAGE = 'taskstream.api-key';

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
  const server = await startTestServer({ API_KEYS, ...env });
  servers.push(server);
  return server;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function createAs(server: TestServer, key: string, body: unknown): Promise<TaskSnapshot> {
  const response = await server.api('/api/tasks', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(key) },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as TaskSnapshot;
}

async function tasksOf(server: TestServer, key: string): Promise<TaskSnapshot[]> {
  const response = await server.api('/api/tasks', { headers: bearer(key) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { tasks: TaskSnapshot[] }).tasks;
}

/** A request the page made, as the server received it. */
interface Sent {
  url: URL;
  method: string;
  authorization: string | undefined;
  resourceType: string;
}

/** What the page did, recorded from before its first request. */
interface Recorded {
  page: Page;
  sent: Sent[];
  /** Status of every answer to an /api request, in order. */
  answers: { path: string; status: number }[];
  /** CSP violations and uncaught errors (failed loads, such as a 401, are expected here). */
  problems: string[];
}

async function openPage(server: TestServer, path = '/', initScript?: string): Promise<Recorded> {
  // Reduced motion: the bars jump to their values, so screenshots show the state as it is.
  context = await browser!.newContext({ viewport: { width: 1000, height: 800 }, reducedMotion: 'reduce' });
  // A step that cannot happen fails in 10 s, not at the test's timeout.
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const sent: Sent[] = [];
  const answers: Recorded['answers'] = [];
  const problems: string[] = [];
  page.on('request', (request) => {
    sent.push({
      url: new URL(request.url()),
      method: request.method(),
      authorization: request.headers()['authorization'],
      resourceType: request.resourceType(),
    });
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/api/')) answers.push({ path: url.pathname, status: response.status() });
  });
  page.on('console', (message) => {
    if (message.text().startsWith('CSP violation')) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  await page.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (event) => {
      console.error('CSP violation: ' + event.violatedDirective + ' ' + event.blockedURI);
    });`,
  });
  if (initScript) await page.addInitScript({ content: initScript });
  await withTimeout(page.goto(`${server.url}${path}`), `${path} to load`);
  return { page, sent, answers, problems };
}

/** Waits until `locator` is visible, failing with `label` after `ms`. */
async function shown(locator: Locator, label: string, ms = 10_000): Promise<void> {
  await withTimeout(locator.first().waitFor({ state: 'visible', timeout: ms + 5_000 }), label, ms);
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
const streamsOf = (sent: Sent[]) => sent.filter((request) => request.url.pathname === '/api/events');
const mintsOf = (sent: Sent[]) => sent.filter((request) => request.url.pathname === '/api/stream-tokens');
// Expressions rather than functions: the tests are type-checked without the DOM library.
const storedKey = (page: Page) => page.evaluate<string | null>(`sessionStorage.getItem(${JSON.stringify(KEY_STORAGE)})`);
const localStorageSize = (page: Page) => page.evaluate<number>('localStorage.length');

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true, animations: 'disabled' });
}

/** No key in any URL; event streams carry a token and no header; every other /api request the key. */
function expectKeyOnlyInHeaders(sent: Sent[], key: string): void {
  for (const request of sent) {
    expect(request.url.href, 'a key in a URL').not.toContain(key);
    expect(request.url.href, 'a key in a URL').not.toContain(encodeURIComponent(key));
  }
  const streams = streamsOf(sent);
  expect(streams.length).toBeGreaterThan(0);
  for (const stream of streams) {
    expect(stream.resourceType).toBe('eventsource');
    expect(stream.url.searchParams.get('token')).toMatch(/^st1\./);
    expect(stream.authorization).toBeUndefined();
  }
  for (const request of sent.filter((r) => r.url.pathname.startsWith('/api/') && r.url.pathname !== '/api/events')) {
    expect(request.authorization, `${request.method} ${request.url.pathname}`).toBe(`Bearer ${key}`);
  }
}

describe('the dashboard with API keys', () => {
  it('asks for a key, refuses a wrong one, and with a right one shows and runs only its owner\'s tasks live', async () => {
    const server = await start();
    const aliceTask = await createAs(server, ALICE, { type: 'sample', input: { steps: 1, step_ms: 0 } });
    const bobTask = await createAs(server, BOB, { type: 'sample', input: { steps: 1, step_ms: 0 } });

    const { page, sent, answers, problems } = await openPage(server);
    const keyInput = page.getByLabel('API key', { exact: true });
    await shown(keyInput, 'the page to ask for a key');
    expect(await page.locator('#dashboard').isHidden()).toBe(true);
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('locked');
    expect(await page.locator('#key-error').isHidden()).toBe(true);
    expect(answers.some((answer) => answer.status === 401)).toBe(true);
    await screenshot(page, 'auth-prompt');

    // A wrong key: a clear message, and the form asks again.
    await keyInput.fill('not-anyones-key-0000');
    await page.getByRole('button', { name: 'Use key' }).click();
    const error = page.locator('#key-error');
    await shown(error, 'the wrong key message');
    expect(await error.textContent()).toBe('The service did not accept this key. Check it and try again.');
    expect(await keyInput.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#dashboard').isHidden()).toBe(true);
    expect(await storedKey(page)).toBeNull();
    await screenshot(page, 'auth-wrong-key');

    const signInAt = sent.length;
    await keyInput.fill(ALICE);
    await page.getByRole('button', { name: 'Use key' }).click();
    await live(page);
    expect(await page.locator('#key-panel').isHidden()).toBe(true);
    expect(await storedKey(page)).toBe(ALICE);
    await shown(badge(rowOf(page, aliceTask.task_id), 'Completed'), 'alice\'s task');
    expect(await page.locator('li.task').count()).toBe(1);
    expect(await rowOf(page, bobTask.task_id).count()).toBe(0);

    // Start a task from the form and watch it finish over the stream, with no list reload.
    const listLoads = () => sent.filter((r) => r.url.pathname === '/api/tasks' && r.method === 'GET').length;
    const loadsBefore = listLoads();
    await page.getByLabel('Task type').selectOption('sample');
    await page.getByLabel('Steps', { exact: true }).fill('3');
    await page.getByLabel('Step (ms)').fill('200');
    await page.getByRole('button', { name: 'Start task' }).click();
    await shown(page.locator('#form-status', { hasText: 'Started sample' }), 'the task to start');
    const started = (await tasksOf(server, ALICE)).find((task) => (task.input as { steps?: number }).steps === 3)!;
    expect(started).toBeDefined();
    const row = rowOf(page, started.task_id);
    await shown(badge(row, 'Completed'), 'the started task to complete');
    expect(await row.locator('.progress-text').textContent()).toBe('100 % · Step 3/3');
    expect(listLoads()).toBe(loadsBefore);

    // Cancel works with the key.
    const blocked = await createAs(server, ALICE, { type: 'block', input: { progress: 1 } });
    const blockedRow = rowOf(page, blocked.task_id);
    await shown(badge(blockedRow, 'Running'), 'the block task to run');
    await blockedRow.getByRole('button', { name: /^Cancel/ }).click();
    await shown(badge(blockedRow, 'Cancelled'), 'the task to be cancelled');
    expect((await tasksOf(server, ALICE)).find((task) => task.task_id === blocked.task_id)?.status).toBe('cancelled');

    // Bob's task never reached the page, nor did anything of his stream.
    expect(await rowOf(page, bobTask.task_id).count()).toBe(0);
    expect(await page.locator('li.task').count()).toBe(3);
    expect(server.hub.size).toBe(1);
    expectKeyOnlyInHeaders(sent.slice(signInAt + 1), ALICE);
    expect(mintsOf(sent)).toHaveLength(1);
    expect(mintsOf(sent)[0]!.method).toBe('POST');
    await screenshot(page, 'auth-dashboard');

    // A reload keeps the key for the browser session: no form, no 401, the same tasks.
    const reloadAt = sent.length;
    const answersAt = answers.length;
    await withTimeout(page.reload(), 'the reload');
    await live(page);
    await shown(badge(rowOf(page, started.task_id), 'Completed'), 'the started task after the reload');
    expect(await page.locator('#key-panel').isHidden()).toBe(true);
    expect(await page.locator('li.task').count()).toBe(3);
    expect(answers.slice(answersAt).filter((answer) => answer.status === 401)).toEqual([]);
    expectKeyOnlyInHeaders(sent.slice(reloadAt), ALICE);
    expect(await localStorageSize(page)).toBe(0);

    // Signing out forgets the key and what it showed.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await shown(keyInput, 'the key form after signing out');
    expect(await storedKey(page)).toBeNull();
    expect(await page.locator('li.task').count()).toBe(0);
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('locked');
    await until(() => server.hub.size === 0, 'the stream to close after signing out');
    await screenshot(page, 'auth-signed-out');
    expect(problems).toEqual([]);
  });

  it('renews its stream token before it expires, and mints a new one when its stream is refused', async () => {
    const env = { PORT: String(await freePort()), STREAM_TOKEN_TTL_MS: '6000', SSE_RETRY_MS: '100' };
    const server = await start({ ...env, STREAM_TOKEN_SECRET: 'first-secret-'.padEnd(32, '1') });
    // A key already given earlier in this browser session.
    const { page, sent, answers, problems } = await openPage(server, '/', `sessionStorage.setItem('${KEY_STORAGE}', '${ALICE}')`);
    await live(page);
    expect(await page.locator('#key-panel').isHidden()).toBe(true);
    const first = await createAs(server, ALICE, { type: 'sample', input: { steps: 1, step_ms: 0 } });
    await shown(badge(rowOf(page, first.task_id), 'Completed'), 'the first task');

    // Before the token runs out (at 80 % of its 6 s), a new stream resumes after the last event.
    // (Long enough that the next renewal does not come during the restart below.)
    const firstToken = streamsOf(sent)[0]!.url.searchParams.get('token');
    await until(() => streamsOf(sent).length >= 2, 'the stream to be renewed', 12_000);
    const renewed = streamsOf(sent)[1]!.url;
    expect(renewed.searchParams.get('token')).not.toBe(firstToken);
    expect(renewed.searchParams.get('last_event_id')).toMatch(/^\d+$/);
    await until(() => server.hub.size === 1, 'the old stream to close');
    const second = await createAs(server, ALICE, { type: 'sample', input: { steps: 1, step_ms: 0 } });
    await shown(badge(rowOf(page, second.task_id), 'Completed'), 'a task started after the renewal');

    // A stream refused for good gets a new token and resumes. Here the service restarts with
    // another STREAM_TOKEN_SECRET, so the token the page's stream reconnects with is refused
    // (a real 401); the key is still good, so the page mints a new token with it.
    const mints = mintsOf(sent).length;
    const streams = streamsOf(sent).length;
    const answered = answers.length;
    // The browser is offline while the service restarts: its stream's reconnects fail as
    // network errors (and are tried again with the same URL) rather than reaching the
    // stopping service, whose 503 would make the page mint a new token before any refusal.
    await page.context().setOffline(true);
    await servers.splice(servers.indexOf(server), 1)[0]!.close();
    const restarted = await start({ ...env, STREAM_TOKEN_SECRET: 'second-secret-'.padEnd(32, '2') });
    const third = await createAs(restarted, ALICE, { type: 'sample', input: { steps: 1, step_ms: 0 } });
    await page.context().setOffline(false);
    const streamAnswers = () => answers.slice(answered).filter((answer) => answer.path === '/api/events').map((answer) => answer.status);
    await until(() => streamAnswers().includes(200), 'a stream with a new token after the refusal', 8_000);
    expect(streamAnswers()[0], 'the stream reconnecting with the old token').toBe(401);
    await live(page);
    await shown(badge(rowOf(page, third.task_id), 'Completed'), 'the task started while the stream was down');
    expect(mintsOf(sent).length).toBeGreaterThan(mints);
    // It reconnected with the old token first (refused), then opened a stream with a new
    // one, resuming after the last event it had.
    const oldToken = streamsOf(sent)[streams - 1]!.url.searchParams.get('token');
    const after = streamsOf(sent).slice(streams).map((request) => request.url.searchParams);
    expect(after[0]!.get('token')).toBe(oldToken);
    const fresh = after.find((params) => params.get('token') !== oldToken);
    expect(fresh, 'a stream with a new token').toBeDefined();
    expect(fresh!.get('last_event_id')).toMatch(/^\d+$/);
    expect(await page.locator('#key-panel').isHidden()).toBe(true);
    await until(() => restarted.hub.size === 1, 'one stream again');
    expectKeyOnlyInHeaders(sent, ALICE);
    expect(problems).toEqual([]);
  });

  it('asks again when the saved key is no longer accepted', async () => {
    const server = await start();
    const { page } = await openPage(server, '/', `sessionStorage.setItem('${KEY_STORAGE}', 'a-key-nobody-has-0000')`);
    await shown(page.locator('#key-error', { hasText: 'no longer accepts the saved key' }), 'the message about the saved key');
    expect(await page.locator('#dashboard').isHidden()).toBe(true);
    expect(await storedKey(page)).toBeNull();
  });
});

describe('/docs with API keys', () => {
  it('authorizes with the key, sends it from Try it out, and keeps it for the browser session', async () => {
    const server = await start();
    const { page, sent, problems } = await openPage(server, '/docs');
    const authorize = page.locator('.scheme-container .btn.authorize');
    await shown(authorize, 'the Authorize button', 15_000);

    await authorize.click();
    const modal = page.locator('.modal-ux');
    await shown(modal, 'the authorization dialog');
    // The bearer scheme's box; the other is the stream token's.
    const bearerBox = modal.locator('.auth-container', { has: page.locator('h4', { hasText: /^apiKey\b/ }) });
    const authorizeWith = async (key: string) => {
      await bearerBox.locator('#auth-bearer-value').fill(key);
      await bearerBox.getByRole('button', { name: 'Apply credentials' }).click();
      await shown(bearerBox.getByRole('button', { name: 'Remove authorization' }), 'the scheme to be authorized');
    };
    // Logout forgets the key; Authorize keeps it in sessionStorage.
    await authorizeWith(BOB);
    expect(await storedKey(page)).toBe(BOB);
    await bearerBox.getByRole('button', { name: 'Remove authorization' }).click();
    await shown(bearerBox.locator('#auth-bearer-value'), 'the scheme to be unauthorized');
    expect(await storedKey(page)).toBeNull();
    await authorizeWith(ALICE);
    await bearerBox.getByRole('button', { name: 'Close' }).click();
    await withTimeout(modal.waitFor({ state: 'detached', timeout: 15_000 }), 'the dialog to close');
    expect(await storedKey(page)).toBe(ALICE);

    const stats = async () => {
      const operation = page.locator('#operations-default-getStats');
      await shown(operation, 'the GET /api/tasks/stats operation', 15_000);
      // Deep linking reopens, after a reload, the operation that was open.
      if (!(await operation.evaluate((element) => element.classList.contains('is-open')))) {
        await operation.locator('.opblock-summary').first().click();
      }
      await operation.getByRole('button', { name: 'Try it out' }).click();
      const requestsBefore = sent.length;
      await operation.getByRole('button', { name: 'Execute' }).click();
      const status = operation.locator('.live-responses-table tbody .response-col_status');
      await shown(status, 'the response of GET /api/tasks/stats', 15_000);
      const request = sent.slice(requestsBefore).find((r) => r.url.pathname === '/api/tasks/stats');
      return { operation, status: (await status.first().textContent())?.trim(), request };
    };
    const answered = await stats();
    expect(answered.status).toBe('200');
    expect(answered.request?.authorization).toBe(`Bearer ${ALICE}`);
    await answered.operation.screenshot({ path: `${SCREENSHOTS}docs-authorized.png`, animations: 'disabled' });

    // The key outlives a reload of the page, in sessionStorage only.
    await withTimeout(page.reload(), 'the /docs reload', 15_000);
    await shown(authorize, 'the Authorize button after the reload', 15_000);
    const again = await stats();
    expect(again.status).toBe('200');
    expect(again.request?.authorization).toBe(`Bearer ${ALICE}`);
    expect(await localStorageSize(page)).toBe(0);

    // The dashboard in the same tab uses it without asking.
    await withTimeout(page.goto(`${server.url}/`), 'the dashboard to load');
    await live(page);
    expect(await page.locator('#key-panel').isHidden()).toBe(true);
    expect(problems).toEqual([]);
  }, 60_000);
});

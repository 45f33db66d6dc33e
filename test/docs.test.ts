import { existsSync, readFileSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { withTimeout } from './helpers/timeout.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const committed = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8'));

let server: TestServer | undefined;
let browser: Browser | undefined;
afterEach(async () => {
  await browser?.close();
  browser = undefined;
  await server?.close();
  server = undefined;
});

/** Every `src` and `href` in the page. */
/** The paths a page loads, resolved against its `<base href>` as a browser does. */
function references(html: string): string[] {
  const base = /<base href="([^"]*)">/.exec(html)?.[1] ?? '/';
  return [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"/g)].map(
    (match) => new URL(match[1]!, new URL(base, 'http://page.invalid')).pathname,
  );
}

const CONTENT_TYPES: Record<string, RegExp> = {
  css: /^text\/css\b/,
  js: /^text\/javascript\b/,
  png: /^image\/png$/,
};

describe('/docs', () => {
  it('answers HTML that loads only same-origin files, no inline script, under a strict CSP', async () => {
    server = await startTestServer();
    const response = await server.api('/docs');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html\b/);
    const csp = response.headers.get('content-security-policy') ?? '';
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values]));
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(directives.get('default-src')).toEqual(["'self'"]);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');

    const html = await response.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.map((script) => script[2]!.trim())).toEqual(['', '']);
    expect(scripts.every((script) => /\bsrc="/.test(script[1]!))).toBe(true);

    const assets = references(html);
    expect(assets).toEqual(
      expect.arrayContaining(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/init.js']),
    );
    for (const asset of assets) {
      expect(asset, 'same origin, absolute path').toMatch(/^\/[^/]/);
      const answer = await server.api(asset);
      expect(answer.status, asset).toBe(200);
      const extension = asset.split('.').pop()!;
      expect(answer.headers.get('content-type'), asset).toMatch(CONTENT_TYPES[extension]!);
      expect((await answer.arrayBuffer()).byteLength, asset).toBeGreaterThan(0);
    }
  });

  it('points Swagger UI at /openapi.yaml from its own initializer file', async () => {
    server = await startTestServer();
    const init = await (await server.api('/docs/init.js')).text();
    expect(init).toMatch(/new URL\('\.\.\/openapi\.yaml', document\.currentScript\.src\)/);
    expect(init).toMatch(/validatorUrl: null/);
    expect((await server.api('/openapi.yaml')).status).toBe(200);
  });

  it('serves only the files the page needs', async () => {
    server = await startTestServer();
    // swagger-ui-dist's own page and initializer load the Petstore spec from the internet.
    for (const path of ['/docs/index.html', '/docs/swagger-initializer.js', '/docs/package.json', '/docs/%2e%2e/package.json']) {
      const response = await server.api(path);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type'), path).toMatch(/^application\/problem\+json/);
    }
    const trailing = await server.api('/docs/', { redirect: 'manual' });
    expect(trailing.status).toBe(301);
    expect(trailing.headers.get('location')).toBe('/docs');
  });

  it('is not part of the API spec', () => {
    expect(Object.keys(committed.paths).filter((path) => path.startsWith('/docs'))).toEqual([]);
  });

  it('renders every operation in Chromium with the network off and no console errors', async () => {
    expect(existsSync(CHROMIUM), `Chromium at ${CHROMIUM} (Debian's chromium package, or set CHROMIUM_PATH)`).toBe(
      true,
    );
    server = await startTestServer();
    const origin = server.url;
    browser = await withTimeout(
      chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }),
      'Chromium to start',
      20_000,
    );
    const page = await browser.newPage();
    const outside: string[] = [];
    const requested: string[] = [];
    const problems: string[] = [];
    // Anything not served by the service fails, as it would offline.
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.origin !== origin) {
        outside.push(url.href);
        return route.abort('internetdisconnected');
      }
      requested.push(url.pathname);
      return route.continue();
    });
    // A CSP violation shows up as a console error.
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));

    await withTimeout(page.goto(`${origin}/docs`), 'the /docs page to load', 15_000);
    const operationCount = Object.values(committed.paths as Record<string, object>).reduce(
      (count, item) => count + Object.keys(item).filter((key) => key !== 'parameters').length,
      0,
    );
    const operations = page.locator('.opblock');
    await withTimeout(
      operations.nth(operationCount - 1).waitFor({ timeout: 15_000 }),
      `Swagger UI to render ${operationCount} operations`,
      16_000,
    );
    expect(await operations.count()).toBe(operationCount);
    expect(await page.locator('.info .title').innerText()).toMatch(/^taskstream/);
    expect(requested).toContain('/openapi.yaml');
    expect(outside).toEqual([]);
    expect(problems).toEqual([]);
  });
});

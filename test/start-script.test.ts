import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SOURCES } from './helpers/packed.ts';
import { onJsonLines, projectRoot } from './helpers/process.ts';
import { withTimeout } from './helpers/timeout.ts';

// `npm start` builds dist/ when it is missing or stale. The README starts two instances at
// once from one fresh checkout: one must build while the other waits, and both must run.

const work = mkdtempSync(join(tmpdir(), 'taskstream-start-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function startInstance(checkout: string) {
  const child = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: checkout,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const listening = new Promise<string>((resolve, reject) => {
    onJsonLines(child.stdout, (entry) => {
      if (entry.msg === 'listening') resolve(entry.url as string);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
  return { child, listening, stderr: () => stderr };
}

it('two instances started at once from a fresh checkout build dist/ once and both serve', async () => {
  const checkout = join(work, 'checkout');
  for (const entry of [...SOURCES, 'openapi.yaml', 'package-lock.json']) {
    if (existsSync(join(projectRoot, entry))) cpSync(join(projectRoot, entry), join(checkout, entry), { recursive: true });
  }
  symlinkSync(join(projectRoot, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  expect(existsSync(join(checkout, 'dist'))).toBe(false);
  const instances = [startInstance(checkout), startInstance(checkout)];
  try {
    const urls = await withTimeout(Promise.all(instances.map((instance) => instance.listening)), 'both instances to listen', 150_000);
    for (const url of urls) expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const builds = instances.filter((instance) => instance.stderr().includes('building dist/'));
    expect(builds).toHaveLength(1);
    expect(existsSync(join(checkout, '.build.lock'))).toBe(false);
  } finally {
    for (const { child } of instances) child.kill('SIGKILL');
  }
}, 180_000);

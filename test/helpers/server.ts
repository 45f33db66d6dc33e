import { pino, type Logger } from 'pino';
import { ConfigSchema, type Config } from '../../src/config.ts';
import type { Clock } from '../../src/reaper.ts';
import { startTaskstream, type Taskstream } from '../../src/server.ts';
import { builtInTaskModules } from '../../workers/tasks/index.ts';

/** Test-only task types (see test/fixtures). */
export const fixtureModules: URL[] = [
  'block',
  'spin',
  'ignore-cancel',
  'throws',
  'exits',
  'exhausts-heap',
  'bad-result',
  'flood',
  'gate',
  'flaky',
  'stall',
].map((name) => new URL(`../fixtures/${name}.ts`, import.meta.url));

export interface TestServer extends Taskstream {
  /** fetch against the server: `api('/api/tasks', init)`. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** POST /api/tasks with a JSON body; returns the parsed snapshot (asserting 201). */
  create(body: unknown): Promise<any>;
}

/**
 * A real service on 127.0.0.1, port 0, with real worker threads: built-in and fixture task
 * types. Close it in afterEach (or with `await using`).
 */
export async function startTestServer(
  env: Record<string, string> = {},
  options: { clock?: Clock; logger?: Logger } = {},
): Promise<TestServer> {
  const config: Config = ConfigSchema.parse({
    PORT: '0',
    HOST: '127.0.0.1',
    MAX_WORKERS: '2',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const taskstream = await startTaskstream(config, {
    taskModules: [...builtInTaskModules, ...fixtureModules],
    logger: options.logger ?? pino({ level: config.logLevel }),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const api = (path: string, init?: RequestInit) => fetch(`${taskstream.url}${path}`, init);
  const create = async (body: unknown) => {
    const response = await api('/api/tasks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json();
    if (response.status !== 201) throw new Error(`create answered ${response.status}: ${JSON.stringify(json)}`);
    return json;
  };
  return Object.assign(taskstream, { api, create });
}

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderOpenApiYaml } from '../scripts/openapi-document.ts';
import { ConfigSchema } from '../src/config.ts';
import { startTaskstream } from '../src/server.ts';
import { builtInTaskModules } from '../workers/tasks/index.ts';
import { projectRoot } from './helpers/process.ts';
import { startTestServer } from './helpers/server.ts';

const committed = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
const redocly = join(dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin/cli.js');

interface RedoclyReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
}

/** `redocly lint` (its recommended rules, see redocly.yaml), offline: no telemetry, no update check. */
async function lint(): Promise<RedoclyReport> {
  const run = promisify(execFile)(process.execPath, [redocly, 'lint', 'openapi.yaml', '--format=json'], {
    cwd: projectRoot,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    timeout: 60_000,
  });
  // It exits non-zero when it finds errors; the report is on stdout either way.
  const { stdout } = await run.catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return JSON.parse(stdout) as RedoclyReport;
}

describe('openapi.yaml', () => {
  it('matches the routes (regenerate with `npm run openapi`)', async () => {
    expect(await renderOpenApiYaml()).toBe(committed);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const api = (await SwaggerParser.validate(parse(committed))) as { openapi?: string };
    expect(api.openapi).toBe('3.1.0');
  });

  it('passes Redocly\'s lint with no errors', { timeout: 90_000 }, async () => {
    const report = await lint();
    const errors = report.problems
      .filter((problem) => problem.severity === 'error')
      .map((problem) => `${problem.ruleId} at ${problem.location[0]?.pointer}: ${problem.message}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
  });

  it('documents every route, the SSE stream and every event payload', () => {
    const document = parse(committed);
    expect(Object.keys(document.paths).sort()).toEqual([
      '/api/events',
      '/api/queue/pause',
      '/api/queue/resume',
      '/api/reaper',
      '/api/reaper/run',
      '/api/stream-tokens',
      '/api/task-types',
      '/api/tasks',
      '/api/tasks/batch',
      '/api/tasks/stats',
      '/api/tasks/{task_id}',
      '/api/tasks/{task_id}/cancel',
      '/api/tasks/{task_id}/events',
      '/api/tasks/{task_id}/retry',
      '/api/tasks/{task_id}/wait',
      '/healthz',
      '/metrics',
      '/readyz',
    ]);
    const stream = document.paths['/api/tasks/{task_id}/events'].get.responses['200'].content;
    expect(Object.keys(stream)).toEqual(['text/event-stream']);
    const eventRefs = document.components.schemas.TaskEvent.oneOf.map((branch: { $ref: string }) => branch.$ref);
    expect(eventRefs).toEqual([
      '#/components/schemas/TaskStartedEvent',
      '#/components/schemas/ProgressUpdateEvent',
      '#/components/schemas/TaskCompletedEvent',
      '#/components/schemas/TaskFailedEvent',
      '#/components/schemas/TaskCancelledEvent',
    ]);
    const create = document.components.schemas.CreateTaskRequest;
    expect(Object.keys(create.discriminator.mapping)).toEqual(['sample', 'primes', 'csv_stats', 'batch']);
  });

  it('is served at /openapi.yaml as committed when the built-in task types are loaded', async () => {
    const config = ConfigSchema.parse({ PORT: '0', MAX_WORKERS: '1', LOG_LEVEL: 'silent' });
    const server = await startTaskstream(config, { taskModules: builtInTaskModules });
    try {
      const response = await fetch(`${server.url}/openapi.yaml`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/yaml/);
      expect(await response.text()).toBe(committed);
    } finally {
      await server.close();
    }
  });

  it('is generated from the task types the service loaded', async () => {
    const server = await startTestServer();
    try {
      const served = parse(await (await server.api('/openapi.yaml')).text());
      const branches = served.components.schemas.CreateTaskRequest.oneOf.map((branch: { $ref: string }) => branch.$ref);
      expect(branches).toContain('#/components/schemas/CreateSampleTask');
      expect(branches).toContain('#/components/schemas/CreateBlockTask'); // a test fixture, absent from the committed file
    } finally {
      await server.close();
    }
  });
});

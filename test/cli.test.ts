import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EnvSchema } from '../src/config.ts';
import { runCli, spawnService, type ServiceProcess } from './helpers/process.ts';
import { SseClient } from './helpers/sse.ts';

const USER_TASKS = 'test/fixtures/modules/user';

async function create(url: string, body: unknown) {
  const response = await fetch(`${url}/api/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status, 'create status').toBe(201);
  return (await response.json()) as { task_id: string; stream_url: string };
}

const typesOf = async (url: string) =>
  ((await (await fetch(`${url}/api/task-types`)).json()) as { task_types: { type: string }[] }).task_types
    .map((taskType) => taskType.type)
    .sort();

describe('taskstream --help', { timeout: 90_000 }, () => {
  it('lists every setting as a flag with its environment variable and default', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const [name, schema] of Object.entries(EnvSchema.shape)) {
      if (name === 'TASK_MODULES') continue; // --tasks, below
      const flag = `--${name.toLowerCase().replaceAll('_', '-')} <value>`;
      const fallback = schema.parse(undefined);
      const shown = fallback === undefined || fallback === '' ? 'none' : String(fallback);
      expect(stdout, name).toContain(`${flag}\n      ${schema.description}\n      env ${name}, default ${shown}\n`);
    }
    expect(stdout).toContain('--tasks <file|directory>');
    expect(stdout).toContain('env TASK_MODULES (comma-separated)');
    expect(stdout).toContain('--with-examples');
  });
});

describe('settings on the command line', { timeout: 90_000 }, () => {
  it('stops on a bad flag value with a message naming the flag, and a bad variable naming the variable', async () => {
    const { code, stdout, stderr } = await runCli(['--max-workers', '0', '--port=abc'], { RETENTION_MS: '-5' });
    expect(code).toBe(2);
    expect(stderr).toContain('--max-workers="0"');
    expect(stderr).toContain('--port="abc"');
    expect(stderr).toContain('RETENTION_MS="-5"');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stdout).not.toContain('listening');
  });

  it('names the flags in a rule that spans two settings', async () => {
    const { code, stderr } = await runCli(['--task-timeout-ms', '10', '--max-task-timeout-ms', '5']);
    expect(code).toBe(2);
    expect(stderr).toContain('--task-timeout-ms="10": must not exceed --max-task-timeout-ms');
  });

  it('refuses an unknown flag or command', async () => {
    expect((await runCli(['--max-wokers', '2'])).stderr).toContain("'--max-wokers'");
    const unknown = await runCli(['serve-all']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command "serve-all"');
  });
});

describe('taskstream --tasks', { timeout: 90_000 }, () => {
  let service: ServiceProcess | undefined;
  afterEach(() => service?.kill());

  it('runs only the named task types (one TypeScript, one JavaScript), taking a flag over its variable', async () => {
    service = await spawnService('source', { MAX_WORKERS: '7' }, ['--tasks', USER_TASKS, '--max-workers', '1']);
    expect(await typesOf(service.url)).toEqual(['double', 'greet']);
    const stats = (await (await fetch(`${service.url}/api/tasks/stats`)).json()) as { workers: { max: number } };
    expect(stats.workers.max).toBe(1);

    const greet = await create(service.url, { type: 'greet', input: { name: 'Ada' } });
    const greetEvents = await (await SseClient.connect(`${service.url}${greet.stream_url}`)).untilEnd();
    expect(greetEvents.at(-1)!.json.data).toEqual({ result: { greeting: 'Hello, Ada!' } });
    const double = await create(service.url, { type: 'double', input: { n: 21 } });
    const doubleEvents = await (await SseClient.connect(`${service.url}${double.stream_url}`)).untilEnd();
    expect(doubleEvents.at(-1)!.json.data).toEqual({ result: { doubled: 42 } });

    const spec = parse(await (await fetch(`${service.url}/openapi.yaml`)).text());
    expect(Object.keys(spec.components.schemas)).toEqual(expect.arrayContaining(['CreateGreetTask', 'CreateDoubleTask']));
    expect(Object.keys(spec.components.schemas)).not.toContain('CreateSampleTask');
  });

  it('adds the built-in examples with --with-examples, and reads TASK_MODULES', async () => {
    service = await spawnService('source', { TASK_MODULES: `${USER_TASKS}/greet.ts` }, ['--with-examples']);
    expect(await typesOf(service.url)).toEqual(['batch', 'csv_stats', 'greet', 'primes', 'sample']);
  });

  it('runs the built-in examples when no task module is named', async () => {
    service = await spawnService('source');
    expect(await typesOf(service.url)).toEqual(['batch', 'csv_stats', 'primes', 'sample']);
  });
});

describe('a task module that cannot be loaded', { timeout: 90_000 }, () => {
  const cases = [
    { name: 'throws on import', args: ['--tasks', 'test/fixtures/modules/throws'], file: 'explodes.ts', says: 'this module explodes on import' },
    { name: 'exports no defineTask', args: ['--tasks', 'test/fixtures/modules/no-export'], file: 'nothing.js', says: 'must default-export a defineTask' },
    {
      name: 'repeats a type name',
      args: ['--tasks', USER_TASKS, '--tasks', 'test/fixtures/modules/duplicate'],
      file: 'greet-again.ts',
      says: 'declares task type "greet", already declared by',
    },
    { name: 'does not exist', args: ['--tasks', 'test/fixtures/modules/missing.ts'], file: 'missing.ts', says: 'no such file' },
  ];
  for (const { name, args, file, says } of cases) {
    it(`stops startup when one ${name}, naming the file`, async () => {
      const { code, stdout, stderr } = await runCli(args);
      expect(code).toBe(2);
      expect(stderr).toContain(file);
      expect(stderr).toContain(says);
      expect(stderr).not.toMatch(/\n\s+at /);
      expect(stdout).not.toContain('listening');
    });
  }
});

describe('taskstream openapi', { timeout: 90_000 }, () => {
  it('writes the spec of the named task types to stdout', async () => {
    const { code, stdout } = await runCli(['openapi', '--tasks', USER_TASKS]);
    expect(code).toBe(0);
    const spec = parse(stdout);
    expect(spec.openapi).toBe('3.1.0');
    const branches = spec.components.schemas.CreateTaskRequest.oneOf.map((branch: { $ref: string }) => branch.$ref).sort();
    expect(branches).toEqual(['#/components/schemas/CreateDoubleTask', '#/components/schemas/CreateGreetTask']);
  });
});

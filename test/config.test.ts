import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { projectRoot } from './helpers/process.ts';
import { withTimeout } from './helpers/timeout.ts';

/** Calls loadConfig and returns the ConfigError it throws (failing if it does not). */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    expect(loadConfig({})).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      maxWorkers: 4,
      maxQueue: 1000,
      taskTimeoutMs: 300_000,
      cancelGraceMs: 5000,
      retentionMs: 600_000,
      heartbeatMs: 15_000,
      bodyLimitBytes: 1_048_576,
      maxRetainedBytes: 268_435_456,
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', MAX_WORKERS: '', RETENTION_MS: '' })).toMatchObject({
      port: 3000,
      maxWorkers: 4,
      retentionMs: 600_000,
    });
  });

  it('reads each variable, converting numbers', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      MAX_WORKERS: '8',
      MAX_QUEUE: '0',
      TASK_TIMEOUT_MS: '1000',
      CANCEL_GRACE_MS: '0',
      RETENTION_MS: '0',
      HEARTBEAT_MS: '250',
      BODY_LIMIT_BYTES: '1024',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      maxWorkers: 8,
      maxQueue: 0,
      taskTimeoutMs: 1000,
      cancelGraceMs: 0,
      retentionMs: 0,
      heartbeatMs: 250,
      bodyLimitBytes: 1024,
    });
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ UNRELATED: 'x', PATH: '/bin' }).port).toBe(3000);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['MAX_WORKERS', '0'],
    ['MAX_WORKERS', 'four'],
    ['MAX_QUEUE', '-1'],
    ['RETENTION_MS', '-1'],
    ['RETENTION_MS', '10m'],
    ['TASK_TIMEOUT_MS', '0'],
    ['HEARTBEAT_MS', '0'],
    ['CANCEL_GRACE_MS', 'NaN'],
    ['BODY_LIMIT_BYTES', 'Infinity'],
    ['LOG_LEVEL', 'loud'],
  ])('refuses %s=%s with a ConfigError naming the variable and its value', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.message).toContain(`${name}=${JSON.stringify(value)}`);
  });

  it.each([['abc'], ['1.5'], ['NaN'], ['Infinity']])('says what a number setting expects instead of echoing %s as a number', (value) => {
    const { message } = configError({ MAX_WORKERS: value });
    expect(message).toContain(`MAX_WORKERS=${JSON.stringify(value)}: expected a whole number`);
    expect(message).not.toMatch(/received (NaN|Infinity|number)/);
  });

  it('refuses a TASK_TIMEOUT_MS above MAX_TASK_TIMEOUT_MS, naming both', () => {
    const envs: Record<string, string>[] = [
      { TASK_TIMEOUT_MS: '7200000' }, // above the default maximum of one hour
      { TASK_TIMEOUT_MS: '2000', MAX_TASK_TIMEOUT_MS: '1000' },
      { MAX_TASK_TIMEOUT_MS: '1000' }, // the default timeout is then too long
    ];
    for (const env of envs) {
      const error = configError(env);
      expect(error.message, JSON.stringify(env)).toMatch(/\bTASK_TIMEOUT_MS\b/);
      expect(error.message, JSON.stringify(env)).toContain('MAX_TASK_TIMEOUT_MS');
    }
    expect(loadConfig({ TASK_TIMEOUT_MS: '1000', MAX_TASK_TIMEOUT_MS: '1000' }).taskTimeoutMs).toBe(1000);
  });

  it('refuses a MAX_RETAINED_BYTES below 4 × BODY_LIMIT_BYTES, naming both', () => {
    const envs: Record<string, string>[] = [{ MAX_RETAINED_BYTES: '1000000' }, { MAX_RETAINED_BYTES: '4000', BODY_LIMIT_BYTES: '1001' }];
    for (const env of envs) {
      const error = configError(env);
      expect(error.message, JSON.stringify(env)).toContain(`MAX_RETAINED_BYTES=${JSON.stringify(env.MAX_RETAINED_BYTES)}`);
      expect(error.message, JSON.stringify(env)).toContain('BODY_LIMIT_BYTES');
    }
    expect(loadConfig({ MAX_RETAINED_BYTES: '4096', BODY_LIMIT_BYTES: '1024' }).maxRetainedBytes).toBe(4096);
  });

  it('names every bad variable at once', () => {
    const error = configError({ PORT: 'abc', MAX_WORKERS: '0', RETENTION_MS: '-1' });
    for (const name of ['PORT', 'MAX_WORKERS', 'RETENTION_MS']) expect(error.message).toContain(`${name}=`);
  });

  it('never reads a blank value (only spaces) as 0', () => {
    // Number(' ') is 0: a stray space must not silently mean port 0, no queue, no cancel
    // grace or no retention. Unset (the default) or refused with a ConfigError are both
    // fine; 0 is not.
    const defaults = loadConfig({});
    const readAsZero: string[] = [];
    for (const name of ['PORT', 'MAX_QUEUE', 'CANCEL_GRACE_MS', 'SHUTDOWN_GRACE_MS', 'RETENTION_MS', 'SSE_RETRY_MS']) {
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig({ [name]: '  ' });
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toContain(name);
        continue;
      }
      if (!isDeepStrictEqual(config, defaults)) readAsZero.push(name);
    }
    expect(readAsZero, 'variables whose blank value was read as 0').toEqual([]);
  });

  it('stays in memory without REDIS_URL and reads a Redis URL and prefix when given', () => {
    expect(loadConfig({})).toMatchObject({ redisUrl: undefined, redisPrefix: 'taskstream' });
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2', REDIS_PREFIX: 'jobs-eu' })).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379/2',
      redisPrefix: 'jobs-eu',
    });
    expect(loadConfig({ REDIS_URL: 'rediss://user:secret@cache.internal:6380' }).redisUrl).toBe(
      'rediss://user:secret@cache.internal:6380',
    );
  });

  it.each([
    ['REDIS_URL', '127.0.0.1:6379'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['REDIS_URL', 'redis://'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/abc'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/0/x'],
    ['REDIS_PREFIX', 'two words'],
    ['REDIS_PREFIX', 'a*'],
  ])('refuses %s=%s naming the variable', (name, value) => {
    expect(configError({ [name]: value }).message).toContain(`${name}=${JSON.stringify(value)}`);
  });
});

describe('the real entry point with a bad value', () => {
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

  async function runMain(env: Record<string, string>) {
    const child = spawn(process.execPath, ['--import', tsxLoader, 'src/main.ts'], {
      cwd: projectRoot,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | string>((resolve) =>
      child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    try {
      const code = await withTimeout(exited, 'src/main.ts to exit on a bad config', 20_000);
      return { code, stdout, stderr };
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  it('exits non-zero naming MAX_WORKERS on stderr, without listening', async () => {
    const { code, stdout, stderr } = await runMain({ MAX_WORKERS: '0' });
    expect(typeof code === 'number' && code !== 0, `exit ${code}`).toBe(true);
    expect(stderr).toContain('MAX_WORKERS');
    expect(stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(stdout).not.toContain('listening');
  });

  it('exits non-zero naming REDIS_URL when it is not a Redis URL', async () => {
    const { code, stdout, stderr } = await runMain({ REDIS_URL: 'localhost:6379' });
    expect(typeof code === 'number' && code !== 0, `exit ${code}`).toBe(true);
    expect(stderr).toContain('REDIS_URL');
    expect(stdout).not.toContain('listening');
  });

  it('exits 2 naming PORT, without a stack trace, when the port is already in use', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      const { code, stdout, stderr } = await runMain({ PORT: String(port) });
      expect(code).toBe(2);
      expect(stderr).toContain(`PORT=${port}`);
      expect(stderr).toContain('already in use');
      expect(stderr).not.toMatch(/\n\s+at /);
      expect(stdout).not.toContain('"msg":"listening"');
    } finally {
      taken.close();
    }
  });

  it('names each bad variable when several are wrong', async () => {
    const { code, stdout, stderr } = await runMain({ PORT: 'abc', RETENTION_MS: '-1' });
    expect(typeof code === 'number' && code !== 0, `exit ${code}`).toBe(true);
    expect(stderr).toContain('PORT');
    expect(stderr).toContain('RETENTION_MS');
    expect(stdout).not.toContain('listening');
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChaosReport } from '../chaos/report.ts';
import { SCENARIO_WEIGHTS } from '../chaos/scenarios.ts';
import { projectRoot } from './helpers/process.ts';
import { deleteKeys, keysOf, openRedis, TEST_REDIS_URL, testPrefix } from './helpers/redis.ts';
import { withTimeout } from './helpers/timeout.ts';

const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
/** Small enough for a loaded 2-core machine, large enough to hit every scenario and race. */
const TASKS = 200;
const SEED = 20261201;
// About 20 s of CPU (service and run together): some 15 s on an idle 2-core machine, far more on a shared one.
const RUN_MS = 240_000;

describe('npm run chaos, small configuration', () => {
  const dirs: string[] = [];
  const prefixes: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    if (prefixes.length === 0) return;
    const redis = await openRedis();
    for (const prefix of prefixes.splice(0)) await deleteKeys(redis, prefix);
    redis.disconnect();
  });

  // In Redis mode the tasks queued at SIGTERM outlive the process: the run starts another
  // one on the same Redis, which must find them, end them when cancelled, and resume the
  // all-tasks stream where the stopped one left it.
  it.each([
    ['in memory', () => ({})],
    ['in Redis mode, with a restart after the shutdown', () => {
      const prefix = testPrefix('chaos');
      prefixes.push(prefix);
      return { REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix };
    }],
    // Requests and stream sessions alternate between the instances: a task created on one is
    // cancelled, streamed and resumed on the other, and may run on either.
    ['in Redis mode on two instances at once', () => {
      const prefix = testPrefix('chaos');
      prefixes.push(prefix);
      return { REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix, CHAOS_INSTANCES: '2' };
    }],
  ] as const)(`runs ${TASKS} tasks of every kind against the real service process %s and finds no violation`, { timeout: RUN_MS + 120_000 }, async (_mode, modeEnv) => {
    const dir = mkdtempSync(join(tmpdir(), 'taskstream-chaos-test-'));
    dirs.push(dir);
    const reportFile = join(dir, 'chaos.json');
    const env: Record<string, string> = modeEnv();
    const child = spawn(process.execPath, ['--import', tsxLoader, 'chaos/run.ts'], {
      cwd: projectRoot,
      env: {
        ...process.env,
        ...env,
        CHAOS_TASKS: String(TASKS),
        CHAOS_SEED: String(SEED),
        CHAOS_DEADLINE_MS: String(RUN_MS),
        CHAOS_REPORT: reportFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | string>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    let code: number | string;
    try {
      // Past its deadline the run still stops the service and reports: allow for that on a busy machine.
      code = await withTimeout(exited, 'the chaos run to exit', RUN_MS + 90_000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }

    // Every violation, printed by the run, is in the failure message.
    expect(code, `${stdout}\n${stderr.slice(-3000)}`).toBe(0);
    expect(stdout).toMatch(/^violations +none$/m);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as ChaosReport;
    expect(report.seed).toBe(SEED);
    expect(report.instances).toBe(Number(env.CHAOS_INSTANCES ?? 1));
    expect(report.violations.count).toBe(0);

    // The figures are sane: every accepted task ended once, and the workload did what it says.
    const { tasks, terminalEvents, reconnects, cancelToCancelledMs, memory } = report;
    expect(tasks.accepted).toBeGreaterThanOrEqual(TASKS + tasks.warmUp);
    expect(Object.values(terminalEvents).reduce((sum, count) => sum + count, 0)).toBe(tasks.accepted);
    for (const outcome of ['completed', 'cancelled:requested', 'failed:timeout', 'failed:task_error', 'failed:worker_crashed', 'failed:invalid_result']) {
      expect(terminalEvents[outcome] ?? 0, outcome).toBeGreaterThan(0);
    }
    for (const scenario of Object.keys(SCENARIO_WEIGHTS)) expect(tasks.scenarios[scenario] ?? 0, scenario).toBeGreaterThan(0);
    expect(tasks.refused, 'creates refused with 503 queue_full').toBeGreaterThan(0);
    expect(tasks.manualRetries).toBeGreaterThan(0);
    expect(reconnects.allTasksStream).toBeGreaterThan(0);
    expect(reconnects.taskStreams).toBeGreaterThan(0);
    expect(reconnects.multiplexedStreams).toBeGreaterThan(0);
    expect(report.streamSessions.clientViewsChecked).toBeGreaterThan(0);
    expect(cancelToCancelledMs.count).toBe(terminalEvents['cancelled:requested']);
    expect(cancelToCancelledMs.p50).toBeGreaterThan(0);
    expect(cancelToCancelledMs.p99).toBeGreaterThanOrEqual(cancelToCancelledMs.p50!);
    expect(memory.before!.rssBytes).toBeGreaterThan(0);
    expect(memory.peakRssBytes).toBeGreaterThanOrEqual(memory.after!.rssBytes);
    expect(report.shutdown?.tasks, 'tasks in flight at SIGTERM').toBeGreaterThan(0);
    expect(terminalEvents['cancelled:shutdown'] ?? 0).toBeGreaterThan(0);
    expect(report.exitCode).toBe(0);
    if (env.REDIS_PREFIX) {
      // The run really went through Redis: its tasks are kept there.
      const redis = await openRedis();
      const keys = await keysOf(redis, env.REDIS_PREFIX);
      redis.disconnect();
      expect(keys.some((key) => key.includes(':task:') || key.includes(':tasks'))).toBe(true);
    }
    for (const line of ['tasks ', 'terminal events ', 'reconnects ', 'cancel → task_cancelled ', 'memory (RSS) ']) {
      expect(stdout).toContain(line);
    }
  });
});

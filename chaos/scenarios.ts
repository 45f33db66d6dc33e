import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CreateRequest } from './api.ts';
import { sleep } from './deadline.ts';
import type { TrackedTask } from './ledger.ts';
import type { Random } from './random.ts';
import type { Workload } from './workload.ts';

/**
 * One scenario: creates a task (or a few moves around one), drives it, and follows it to
 * its end. `expect` is the outcome it must reach unless a cancel was accepted:
 * `completed`, `failed:<code>` or `cancelled:<reason>`.
 */
type Scenario = (
  workload: Workload,
  random: Random,
  onAccepted: (task: TrackedTask) => void,
) => Promise<TrackedTask | undefined>;

/** How often each scenario runs, relative to the others. */
export const SCENARIO_WEIGHTS = {
  completes: 26,
  throws: 7,
  flaky: 3,
  bad_result: 2,
  exits: 1,
  exhausts_heap: 1,
  times_out: 7,
  ignores_cancel: 1,
  cancel_queued: 5,
  cancel_running: 8,
  cancel_vs_end: 7,
  cancel_vs_timeout: 8,
  cancel_in_timeout_stop: 4,
  cancel_in_backoff: 5,
  double_cancel: 5,
  delete_running: 3,
} as const;
export type ScenarioName = keyof typeof SCENARIO_WEIGHTS;

/** Safety net for tasks that run until cancelled: a lost cancel then shows as a timeout. */
const UNTIL_CANCELLED_MS = 10_000;

async function start(
  workload: Workload,
  random: Random,
  onAccepted: (task: TrackedTask) => void,
  scenario: string,
  request: CreateRequest,
  expect: string | undefined,
): Promise<TrackedTask | undefined> {
  if (random.chance(0.1)) request.priority = random.int(-5, 5);
  const task = await workload.create(request, scenario, random);
  if (!task) return undefined;
  task.accepted!.expect = expect;
  onAccepted(task);
  return task;
}

/** Sleeps until `ms` after an event's server timestamp (same machine, same clock). */
const sleepUntil = (timestamp: number, ms: number) => sleep(Math.max(0, timestamp + ms - Date.now()));

const started = (workload: Workload, task: TrackedTask, attempt = 1) =>
  workload.ledger.firstEvent(task.id, (event) => event.event === 'task_started' && event.data?.attempt === attempt);

/** A task that ends by itself, of one of the built-in types or a fixture that completes. */
function completing(workload: Workload, random: Random): CreateRequest {
  switch (random.pick(['sample', 'primes', 'csv_stats', 'batch', 'flood', 'gate'] as const)) {
    case 'sample':
      return { type: 'sample', input: { steps: random.int(1, 4), step_ms: random.int(0, 8) } };
    case 'primes':
      return { type: 'primes', input: { limit: random.int(2, 300_000) } };
    case 'csv_stats': {
      const rows = Array.from({ length: random.int(1, 20) }, (_, i) => `${i},${random.int(-1000, 1000)},${random.chance(0.2) ? '' : 'x'}`);
      return { type: 'csv_stats', input: { csv: `id,value,label\n${rows.join('\n')}\n` } };
    }
    case 'batch':
      return {
        type: 'batch',
        input: {
          items: Array.from({ length: random.int(1, 6) }, (_, i) => `item ${i} ${random.int(0, 1e6)}`),
          operation: random.pick(['sha256', 'md5', 'length', 'word_count', 'uppercase']),
          item_ms: random.int(0, 3),
        },
      };
    case 'flood':
      return { type: 'flood', input: { count: random.int(5, 150) } };
    case 'gate':
      return { type: 'gate', input: { dir: openGate(workload) } };
  }
}

/** A directory whose gate is open: a `gate` task there completes at once. */
function openGate(workload: Workload): string {
  const dir = join(workload.scratchDir, 'open-gate');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'open'), '');
  return dir;
}

let flakyDirs = 0;
let stallDirs = 0;

/** A task that runs until it is cancelled (or its safety timeout). */
function untilCancelled(workload: Workload, random: Random): CreateRequest {
  const timeout_ms = UNTIL_CANCELLED_MS;
  switch (random.pick(['block', 'block', 'spin', 'sample', 'primes', 'batch', 'gate'] as const)) {
    case 'block':
      return { type: 'block', input: { progress: random.int(0, 3) }, timeout_ms };
    case 'spin':
      return { type: 'spin', input: {}, timeout_ms };
    case 'sample':
      return { type: 'sample', input: { steps: 1000, step_ms: 10 }, timeout_ms };
    case 'primes':
      return { type: 'primes', input: { limit: 100_000_000_000 }, timeout_ms };
    case 'batch':
      return { type: 'batch', input: { items: Array(500).fill('x'), operation: 'sha256', item_ms: 20 }, timeout_ms };
    case 'gate': {
      const dir = join(workload.scratchDir, 'closed-gate');
      mkdirSync(dir, { recursive: true });
      return { type: 'gate', input: { dir, steps: 0 }, timeout_ms };
    }
  }
}

export const scenarios: Record<ScenarioName, Scenario> = {
  async completes(workload, random, onAccepted) {
    const task = await start(workload, random, onAccepted, 'completes', completing(workload, random), 'completed');
    if (task) await workload.follow(task, random);
    return task;
  },

  async throws(workload, random, onAccepted) {
    const request = {
      type: 'throws',
      input: { message: `chaos ${random.int(0, 1e9)}` },
      max_attempts: random.int(1, 3),
      retry_backoff_ms: random.int(0, 30),
    };
    const task = await start(workload, random, onAccepted, 'throws', request, 'failed:task_error');
    if (task) await workload.follow(task, random);
    return task;
  },

  async flaky(workload, random, onAccepted) {
    const dir = join(workload.scratchDir, `flaky-${flakyDirs++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'open'), '');
    const failures = random.int(1, 2);
    const request = { type: 'flaky', input: { dir, failures }, max_attempts: failures + 1, retry_backoff_ms: random.int(0, 20) };
    const task = await start(workload, random, onAccepted, 'flaky', request, 'completed');
    if (task) await workload.follow(task, random);
    return task;
  },

  async bad_result(workload, random, onAccepted) {
    // Never retried, whatever max_attempts says.
    const request = { type: 'bad_result', input: {}, max_attempts: random.int(1, 2), retry_backoff_ms: 0 };
    const task = await start(workload, random, onAccepted, 'bad_result', request, 'failed:invalid_result');
    if (task) await workload.follow(task, random);
    return task;
  },

  async exits(workload, random, onAccepted) {
    const request = { type: 'exits', input: {}, max_attempts: random.int(1, 2), retry_backoff_ms: random.int(0, 20) };
    const task = await start(workload, random, onAccepted, 'exits', request, 'failed:worker_crashed');
    if (task) await workload.follow(task, random);
    return task;
  },

  async exhausts_heap(workload, random, onAccepted) {
    // Filling 64 MiB takes a while on a busy machine: the timeout must not come first.
    const request = { type: 'exhausts_heap', input: {}, timeout_ms: 120_000 };
    const task = await start(workload, random, onAccepted, 'exhausts_heap', request, 'failed:worker_crashed');
    if (task) await workload.follow(task, random);
    return task;
  },

  async times_out(workload, random, onAccepted) {
    const request: CreateRequest = random.chance(0.3)
      ? { type: 'sample', input: { steps: 50, step_ms: 10 }, timeout_ms: random.int(5, 60) }
      : { type: random.pick(['block', 'spin']), input: {}, timeout_ms: random.int(1, 40) };
    request.max_attempts = random.int(1, 3);
    request.retry_backoff_ms = random.int(0, 20);
    const task = await start(workload, random, onAccepted, 'times_out', request, 'failed:timeout');
    if (task) await workload.follow(task, random);
    return task;
  },

  async ignores_cancel(workload, random, onAccepted) {
    // Only terminating its thread stops it (after CANCEL_GRACE_MS).
    const byCancel = random.chance(0.5);
    const request = { type: 'ignore_cancel', input: {}, timeout_ms: byCancel ? UNTIL_CANCELLED_MS : random.int(5, 40) };
    const task = await start(workload, random, onAccepted, 'ignores_cancel', request, byCancel ? 'cancelled:requested' : 'failed:timeout');
    if (task) {
      await workload.follow(task, random, async () => {
        if (!byCancel) return;
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, random.int(0, 20));
        await workload.cancel(task, 'running');
      });
    }
    return task;
  },

  async cancel_queued(workload, random, onAccepted) {
    // Cancelled at once: usually still queued behind others, sometimes just started.
    const task = await start(workload, random, onAccepted, 'cancel_queued', untilCancelled(workload, random), 'cancelled:requested');
    if (task) await workload.follow(task, random, async () => void (await workload.cancel(task, 'queued')));
    return task;
  },

  async cancel_running(workload, random, onAccepted) {
    const task = await start(workload, random, onAccepted, 'cancel_running', untilCancelled(workload, random), 'cancelled:requested');
    if (task) {
      await workload.follow(task, random, async () => {
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, random.int(0, 25));
        await workload.cancel(task, 'running');
      });
    }
    return task;
  },

  async cancel_vs_end(workload, random, onAccepted) {
    // A cancel sent close to the moment the task completes by itself.
    const steps = random.int(1, 3);
    const stepMs = random.int(2, 8);
    const request = { type: 'sample', input: { steps, step_ms: stepMs } };
    const task = await start(workload, random, onAccepted, 'cancel_vs_end', request, 'completed');
    if (task) {
      await workload.follow(task, random, async () => {
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, steps * stepMs + random.int(-4, 4));
        await workload.cancel(task, 'natural end');
      });
    }
    return task;
  },

  async cancel_vs_timeout(workload, random, onAccepted) {
    // A cancel sent close to the moment the timeout stops the task: the cancel must win if accepted.
    const timeoutMs = random.int(15, 80);
    const request = {
      type: random.chance(0.8) ? 'block' : 'spin',
      input: {},
      timeout_ms: timeoutMs,
      max_attempts: random.int(1, 2),
      retry_backoff_ms: random.int(0, 10),
    };
    const task = await start(workload, random, onAccepted, 'cancel_vs_timeout', request, 'failed:timeout');
    if (task) {
      await workload.follow(task, random, async () => {
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, timeoutMs + random.int(-5, 5));
        await workload.cancel(task, 'timeout');
      });
    }
    return task;
  },

  async cancel_in_timeout_stop(workload, random, onAccepted) {
    // The timeout has already stopped the task, which holds on (stall) while the cancel lands:
    // the cancel must still win, and no further attempt may start.
    const dir = join(workload.scratchDir, `stall-${stallDirs++}`);
    mkdirSync(dir, { recursive: true });
    const timeoutMs = random.int(10, 40);
    const request = { type: 'stall', input: { dir }, timeout_ms: timeoutMs, max_attempts: random.int(1, 2), retry_backoff_ms: random.int(0, 10) };
    const task = await start(workload, random, onAccepted, 'cancel_in_timeout_stop', request, 'failed:timeout');
    if (task) {
      await workload.follow(task, random, async () => {
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, timeoutMs + random.int(5, 60));
        await workload.cancel(task, 'timeout stop');
        // Let it return by itself, before its thread would be terminated.
        writeFileSync(join(dir, 'release'), '');
      });
    }
    return task;
  },

  async cancel_in_backoff(workload, random, onAccepted) {
    // The first attempt fails at once; the cancel lands while the retry waits (or just after).
    const backoffMs = random.int(30, 120);
    const request = {
      type: random.chance(0.85) ? 'throws' : 'exits',
      input: {},
      max_attempts: 3,
      retry_backoff_ms: backoffMs,
    };
    const expect = request.type === 'throws' ? 'failed:task_error' : 'failed:worker_crashed';
    const task = await start(workload, random, onAccepted, 'cancel_in_backoff', request, expect);
    if (task) {
      await workload.follow(task, random, async () => {
        const event = await started(workload, task);
        if (event) await sleepUntil(event.timestamp, random.int(0, backoffMs));
        await workload.cancel(task, 'backoff');
      });
    }
    return task;
  },

  async double_cancel(workload, random, onAccepted) {
    const task = await start(workload, random, onAccepted, 'double_cancel', untilCancelled(workload, random), 'cancelled:requested');
    if (task) {
      await workload.follow(task, random, async () => {
        if (random.chance(0.5)) await started(workload, task);
        if (random.chance(0.5)) {
          await Promise.all([workload.cancel(task, 'double'), workload.cancel(task, 'double')]);
        } else {
          await workload.cancel(task, 'double');
          await workload.cancel(task, 'double');
        }
      });
    }
    return task;
  },

  async delete_running(workload, random, onAccepted) {
    // DELETE refuses a task that has not ended (409), then, once it has, removes it.
    const task = await start(workload, random, onAccepted, 'delete_running', untilCancelled(workload, random), 'cancelled:requested');
    if (task) {
      await workload.follow(task, random, async () => {
        if (random.chance(0.5)) await started(workload, task);
        const refused = await workload.api.remove(task.id);
        workload.actions.add(`delete not ended ${refused.status}`);
        if (refused.status !== 409 || refused.body?.code !== 'task_not_ended') {
          workload.violations.add('delete', `${task.id} (not ended): DELETE answered ${refused.status} ${JSON.stringify(refused.body).slice(0, 200)}`);
        }
        await workload.cancel(task, 'running');
        await workload.ended(task);
        await workload.deleteEnded(task);
      });
    }
    return task;
  },
};

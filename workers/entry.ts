// The Piscina worker: looks the task type up, checks the input, runs it, checks the result.
// Imports nothing from the server.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { createCancelSignal } from './cancel-signal.ts';
import type { ProgressUpdate, TaskContext, TaskDefinition } from './define.ts';
import { SlotState, type WorkerData, type WorkerJob, type WorkerMessage, type WorkerOutcome } from './protocol.ts';

const { taskModules, slots } = workerData as WorkerData;
const definitions = new Map<string, Promise<TaskDefinition>>();
/** Definitions already loaded, so a job of a known type starts without awaiting anything. */
const loaded = new Map<string, TaskDefinition>();
const require = createRequire(import.meta.url);
const MAX_PROGRESS_TEXT = 1000;
const MAX_ERROR_MESSAGE = 2000;

function loadDefinition(type: string): Promise<TaskDefinition> {
  let definition = definitions.get(type);
  if (!definition) {
    const url = taskModules[type];
    if (!url) return Promise.reject(new Error(`unknown task type ${type}`));
    // On Node 20, tsx's ESM hooks do not reach a worker's dynamic import(), but its require
    // hook does: load TypeScript sources with require, compiled JavaScript with import().
    const module: Promise<{ default: TaskDefinition }> = url.endsWith('.ts')
      ? Promise.resolve().then(() => require(fileURLToPath(url)))
      : import(url);
    definition = module.then((imported) => {
      loaded.set(type, imported.default);
      return imported.default;
    });
    definitions.set(type, definition);
  }
  return definition;
}

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function makeProgress({ taskId, run }: WorkerJob, sent: { messages: number }): TaskContext['progress'] {
  return (first, second = null) => {
    const update: ProgressUpdate = first !== null && typeof first === 'object' ? first : { value: first, text: second };
    const step = update.step ?? null;
    const totalSteps = update.total_steps ?? null;
    if ((step !== null && !isCount(step)) || (totalSteps !== null && !isCount(totalSteps))) {
      throw new RangeError(`progress step and total_steps must be non-negative integers, got ${step}/${totalSteps}`);
    }
    const value =
      update.value !== undefined ? update.value : step !== null && totalSteps ? Math.min(1, step / totalSteps) : null;
    if (value !== null && !(Number.isFinite(value) && value >= 0 && value <= 1)) {
      throw new RangeError(`progress value must be between 0 and 1 or null, got ${value}`);
    }
    const note = update.text == null ? null : String(update.text).slice(0, MAX_PROGRESS_TEXT);
    post({ taskId, run, kind: 'progress', value, text: note, step, total_steps: totalSteps });
    sent.messages++;
  };
}

/**
 * The thread runs one job at a time. The executor hands it the next job while the current
 * one runs (so the thread goes straight on to it, without waiting for the main thread):
 * each job waits here for the one before it.
 */
let previous: Promise<unknown> = Promise.resolve();

export default function runJob(job: WorkerJob): Promise<WorkerOutcome> | WorkerOutcome {
  const run = previous.then(() => runOne(job));
  previous = run;
  return run;
}

const NOT_STARTED: WorkerOutcome = { ok: false, notStarted: true, messages: 0 };

async function runOne(job: WorkerJob): Promise<WorkerOutcome> {
  // Start only if the main thread has not recalled or cancelled the job meanwhile, and say
  // so unless the main thread already has.
  const announced =
    Atomics.compareExchange(slots, job.slot, SlotState.announced, SlotState.running) === SlotState.announced;
  if (!announced && Atomics.compareExchange(slots, job.slot, SlotState.handed, SlotState.running) !== SlotState.handed) {
    return NOT_STARTED;
  }
  if (!announced) post({ taskId: job.taskId, run: job.run, kind: 'started' });
  const sent = { messages: announced ? 0 : 1 };
  const cancel = createCancelSignal(slots, job.slot);
  const cancelled = (): WorkerOutcome => ({
    ok: false,
    error: { code: 'cancelled', message: 'The task was cancelled' },
    messages: sent.messages,
  });
  try {
    const definition = loaded.get(job.type) ?? (await loadDefinition(job.type));
    // Cancelled (or timed out) while the module loaded: the task's code never starts.
    if (cancel.requested) return cancelled();
    const input = definition.input.safeParse(job.input);
    if (!input.success) {
      return { ok: false, error: { code: 'invalid_input', message: z.prettifyError(input.error) }, messages: sent.messages };
    }
    const ctx: TaskContext = {
      taskId: job.taskId,
      get signal() {
        return cancel.signal;
      },
      progress: makeProgress(job, sent),
    };
    const raw = await definition.run(input.data, ctx);
    if (cancel.requested) return cancelled();
    const result = definition.result.safeParse(raw);
    if (!result.success) {
      return {
        ok: false,
        error: {
          code: 'invalid_result',
          message: `The task returned a result that does not match its schema: ${z.prettifyError(result.error)}`,
        },
        messages: sent.messages,
      };
    }
    return { ok: true, result: result.data, messages: sent.messages };
  } catch (error) {
    if (cancel.requested) return cancelled();
    return { ok: false, error: { code: 'task_error', message: messageOf(error) }, messages: sent.messages };
  } finally {
    cancel.dispose();
  }
}

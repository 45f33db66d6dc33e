// The Piscina worker: looks the task type up, checks the input, runs it, checks the result.
// Imports nothing from the server.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { createCancelSignal } from './cancel-signal.ts';
import type { ProgressUpdate, TaskContext, TaskDefinition } from './define.ts';
import type { WorkerData, WorkerJob, WorkerMessage, WorkerOutcome } from './protocol.ts';

const { taskModules } = workerData as WorkerData;
const definitions = new Map<string, Promise<TaskDefinition>>();
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
    definition = module.then((loaded) => loaded.default);
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

function makeProgress(taskId: string): TaskContext['progress'] {
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
    post({ taskId, kind: 'progress', value, text: note, step, total_steps: totalSteps });
  };
}

export default async function runJob(job: WorkerJob): Promise<WorkerOutcome> {
  const cancel = createCancelSignal(job.cancelFlag);
  const cancelled = (): WorkerOutcome => ({
    ok: false,
    error: { code: 'cancelled', message: 'The task was cancelled' },
  });
  try {
    const definition = await loadDefinition(job.type);
    // Cancelled (or timed out) while the module loaded: the task's code never starts.
    if (cancel.signal.aborted) return cancelled();
    const input = definition.input.safeParse(job.input);
    if (!input.success) {
      return { ok: false, error: { code: 'invalid_input', message: z.prettifyError(input.error) } };
    }
    const ctx: TaskContext = {
      taskId: job.taskId,
      signal: cancel.signal,
      progress: makeProgress(job.taskId),
    };
    const raw = await definition.run(input.data, ctx);
    if (cancel.signal.aborted) return cancelled();
    const result = definition.result.safeParse(raw);
    if (!result.success) {
      return {
        ok: false,
        error: {
          code: 'invalid_result',
          message: `The task returned a result that does not match its schema: ${z.prettifyError(result.error)}`,
        },
      };
    }
    return { ok: true, result: result.data };
  } catch (error) {
    if (cancel.signal.aborted) return cancelled();
    return { ok: false, error: { code: 'task_error', message: messageOf(error) } };
  } finally {
    cancel.dispose();
    post({ taskId: job.taskId, kind: 'end' });
  }
}

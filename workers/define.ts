import type { z } from 'zod';

/** What a running task can see and do. */
export interface TaskContext {
  readonly taskId: string;
  /**
   * Aborts when the task is cancelled or times out. `signal.aborted` and
   * `signal.throwIfAborted()` read shared memory, so they see a cancel even inside a
   * synchronous loop that never yields; the `abort` event fires once the task awaits.
   */
  readonly signal: AbortSignal;
  /**
   * Reports progress: `value` in 0..1 (or null when unknown) and a short human note; or an
   * object that may also count steps (`value` defaults to step / total_steps).
   */
  progress(value: number | null | ProgressUpdate, text?: string | null): void;
}

export interface ProgressUpdate {
  value?: number | null;
  text?: string | null;
  /** Steps done so far. */
  step?: number;
  /** Steps in all, when known. */
  total_steps?: number;
}

export interface TaskDefinition<
  Input extends z.ZodType = z.ZodType,
  Result extends z.ZodType = z.ZodType,
  Type extends string = string,
> {
  /** snake_case name used on the wire. */
  readonly type: Type;
  readonly description: string;
  readonly input: Input;
  readonly result: Result;
  /** A valid input, shown in docs and used as a starting point by clients. */
  readonly example: z.input<Input>;
  run(input: z.output<Input>, ctx: TaskContext): Promise<z.input<Result>> | z.input<Result>;
}

const TASK_TYPE_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * Declares a task type once: its schemas drive validation, docs and the worker's own checks.
 * The type name is kept as a literal type, so `start('resize', input)` can be checked.
 */
export function defineTask<Input extends z.ZodType, Result extends z.ZodType, const Type extends string = string>(
  definition: TaskDefinition<Input, Result, Type>,
): TaskDefinition<Input, Result, Type> {
  if (!TASK_TYPE_NAME.test(definition.type)) {
    throw new TypeError(
      `task type name must match ${TASK_TYPE_NAME}, got ${JSON.stringify(definition.type)}`,
    );
  }
  return definition;
}

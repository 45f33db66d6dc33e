import { z } from 'zod';
import type { TaskDefinition } from '../../workers/define.ts';
import { TaskModuleError } from './task-module-error.ts';
import { displayName, isTypeScript } from './task-modules.ts';
import { registerTypeScriptLoader } from './typescript-loader.ts';

export interface TaskTypeInfo {
  type: string;
  description: string;
  input_schema: unknown;
  result_schema: unknown;
  example: unknown;
}

/** An idempotency key: 1-255 visible ASCII characters. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The task types this service runs, loaded from their modules. The main thread only reads
 * their schemas; workers import the same modules to run them.
 */
export class TaskRegistry {
  readonly #definitions: Map<string, TaskDefinition>;
  readonly #moduleUrls: Record<string, string>;

  private constructor(definitions: Map<string, TaskDefinition>, moduleUrls: Record<string, string>) {
    this.#definitions = definitions;
    this.#moduleUrls = moduleUrls;
  }

  /**
   * Imports each module and reads its default export. Any module that fails to import,
   * exports no `defineTask(...)` declaration, or repeats a type name stops the load with a
   * TaskModuleError naming its file, before anything else starts.
   */
  static async load(moduleUrls: readonly URL[]): Promise<TaskRegistry> {
    if (moduleUrls.some(isTypeScript)) await registerTypeScriptLoader();
    const definitions = new Map<string, TaskDefinition>();
    const urls: Record<string, string> = {};
    for (const url of moduleUrls) {
      const file = displayName(url);
      let module: { default?: unknown };
      try {
        module = (await import(url.href)) as { default?: unknown };
      } catch (error) {
        throw new TaskModuleError(file, `failed to import: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      }
      const definition = module.default;
      if (!isTaskDefinition(definition)) {
        throw new TaskModuleError(file, 'must default-export a defineTask(...) declaration (export default defineTask({ type, input, result, run }))');
      }
      const earlier = urls[definition.type];
      if (earlier !== undefined) {
        throw new TaskModuleError(file, `declares task type "${definition.type}", already declared by ${displayName(earlier)}`);
      }
      definitions.set(definition.type, definition);
      urls[definition.type] = url.href;
    }
    if (definitions.size === 0) throw new TypeError('at least one task type is needed');
    return new TaskRegistry(definitions, urls);
  }

  get(type: string): TaskDefinition | undefined {
    return this.#definitions.get(type);
  }

  get types(): string[] {
    return [...this.#definitions.keys()];
  }

  /** Type name → module URL, for the worker threads. */
  get moduleUrls(): Record<string, string> {
    return { ...this.#moduleUrls };
  }

  describe(): TaskTypeInfo[] {
    return [...this.#definitions.values()].map((definition) => ({
      type: definition.type,
      description: definition.description,
      input_schema: z.toJSONSchema(definition.input, { io: 'input', unrepresentable: 'any' }),
      result_schema: z.toJSONSchema(definition.result, { io: 'output', unrepresentable: 'any' }),
      example: definition.example,
    }));
  }

  /**
   * The body of a create request: one branch per task type, chosen by `type`, so an unknown
   * type points at `/type` and a bad input points into `/input/...`.
   */
  createRequestSchema(maxTimeoutMs: number) {
    const branches = [...this.#definitions.values()].map((definition) =>
      z
        .strictObject({
          type: z.literal(definition.type),
          input: definition.input,
          ...taskOptions(maxTimeoutMs),
        })
        .meta({ id: `Create${pascal(definition.type)}Task`, description: definition.description }),
    );
    const [first, ...rest] = branches;
    return z.discriminatedUnion('type', [first!, ...rest]).meta({ id: 'CreateTaskRequest' });
  }

  /**
   * One item of a bulk create: a create request plus its own `idempotency_key` (what the
   * Idempotency-Key header is to a single create). Each item is validated on its own.
   */
  batchItemSchema(maxTimeoutMs: number) {
    const branches = [...this.#definitions.values()].map((definition) =>
      z
        .strictObject({
          type: z.literal(definition.type),
          input: definition.input,
          ...taskOptions(maxTimeoutMs),
          idempotency_key: z
            .string()
            .regex(IDEMPOTENCY_KEY, 'expected 1-255 visible ASCII characters')
            .optional()
            .describe('Makes this item safe to repeat, like the Idempotency-Key header of a single create'),
        })
        .meta({ id: `Batch${pascal(definition.type)}Item`, description: definition.description }),
    );
    const [first, ...rest] = branches;
    return z.discriminatedUnion('type', [first!, ...rest]).meta({ id: 'BatchCreateItem' });
  }
}

export const MAX_LABELS = 20;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,62}$/;

/** The create options every task type shares. */
function taskOptions(maxTimeoutMs: number) {
  return {
    timeout_ms: z
      .int()
      .min(1)
      .max(maxTimeoutMs)
      .optional()
      .describe('Run time limit of each attempt, counted from its start'),
    priority: z.int().min(-1000).max(1000).optional().describe('Higher starts first (default 0)'),
    max_attempts: z
      .int()
      .min(1)
      .max(20)
      .optional()
      .describe('Attempts allowed when an attempt fails with task_error, timeout, worker_crashed or worker_lost (default 1)'),
    retry_backoff_ms: z
      .int()
      .min(0)
      .max(3_600_000)
      .optional()
      .describe('Base delay before a retry, doubled per attempt, with jitter (default 1000)'),
    labels: z
      .record(
        z.string().regex(LABEL_KEY, 'label keys are 1-63 characters: letters, digits, _ . / -'),
        z.string().max(256),
      )
      .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
      // The spec generator drops a record's key schema and cannot read a refine: say both here.
      .meta({ propertyNames: { pattern: LABEL_KEY.source }, maxProperties: MAX_LABELS })
      .optional()
      .describe('Free-form key → value pairs to find tasks by (`GET /api/tasks?label=key:value`)'),
  };
}

const pascal = (name: string) => name.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase());

const isSchema = (value: unknown) => typeof (value as { safeParse?: unknown })?.safeParse === 'function';

/** Any copy of defineTask makes this shape: the check cannot rely on one module instance. */
function isTaskDefinition(value: unknown): value is TaskDefinition {
  const definition = value as Partial<TaskDefinition> | null | undefined;
  return (
    typeof definition?.type === 'string' &&
    typeof definition.run === 'function' &&
    isSchema(definition.input) &&
    isSchema(definition.result)
  );
}

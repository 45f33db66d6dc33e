import { z } from 'zod';
import type { TaskDefinition } from '../../workers/define.ts';

export interface TaskTypeInfo {
  type: string;
  description: string;
  input_schema: unknown;
  result_schema: unknown;
  example: unknown;
}

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

  static async load(moduleUrls: readonly URL[]): Promise<TaskRegistry> {
    const definitions = new Map<string, TaskDefinition>();
    const urls: Record<string, string> = {};
    for (const url of moduleUrls) {
      const module = (await import(url.href)) as { default?: TaskDefinition };
      const definition = module.default;
      if (!definition?.type || typeof definition.run !== 'function') {
        throw new TypeError(`${url.href} must default-export a defineTask(...) declaration`);
      }
      if (definitions.has(definition.type)) {
        throw new TypeError(`task type ${definition.type} is declared twice (${url.href})`);
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
          timeout_ms: z
            .int()
            .min(1)
            .max(maxTimeoutMs)
            .optional()
            .describe('Run time limit for this task, counted from its start'),
        })
        .meta({ id: `Create${pascal(definition.type)}Task`, description: definition.description }),
    );
    const [first, ...rest] = branches;
    return z.discriminatedUnion('type', [first!, ...rest]).meta({ id: 'CreateTaskRequest' });
  }
}

const pascal = (name: string) => name.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase());

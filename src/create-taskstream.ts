import type { IncomingMessage, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { TaskDefinition } from '../workers/define.ts';
import { builtInTaskModules } from '../workers/tasks/index.ts';
import { AppError, errors } from './errors.ts';
import type { TaskEvent } from './events.ts';
import { isTerminalEvent } from './events.ts';
import { fieldErrors, problemResponse } from './http/problem.ts';
import { buildTaskstream, type TaskstreamCore } from './server.ts';
import type { CreateTaskInput, ListTasksInput } from './service.ts';
import { configFromOptions, type SettingOptions } from './settings.ts';
import { toSnapshot, type TaskRecord, type TaskSnapshot } from './task-record.ts';
import { resolveTaskModules, type TaskModuleSource } from './tasks/task-modules.ts';
import { normalizeBasePath } from './http/base-path.ts';
import { presentSnapshot } from './routes/task-presenter.ts';

/** Any task type declaration: the default when start() is not typed. */
export type AnyTaskDefinition = TaskDefinition<z.ZodType, z.ZodType, string>;
/** The type names of a union of declarations. */
export type TaskTypeName<T extends AnyTaskDefinition> = T['type'];
/** What start() accepts as the input of task type `K`: the input side of its zod schema. */
export type TaskInput<T extends AnyTaskDefinition, K extends string> = z.input<Extract<T, { type: K }>['input']>;

export interface CreateTaskstreamOptions extends SettingOptions {
  /**
   * Task modules: files (`.js`, `.mjs`, `.ts`), directories of them, or file URLs, each
   * default-exporting `defineTask(...)`. None: the built-in examples.
   */
  tasks?: readonly TaskModuleSource[];
  /** Load the built-in examples as well as `tasks`. */
  withExamples?: boolean;
  /**
   * The path `app` is mounted at (`/jobs`), or the prefix `handler` serves under. Requests
   * find their prefix by themselves; this is for URLs made outside a request, such as the
   * `stream_url` that start() returns. Unset, the prefix of the latest request is used.
   */
  basePath?: string;
  /** Defaults to a pino logger at `logLevel`. */
  logger?: Logger;
}

/** Options of one task, as in the body of `POST /api/tasks`, plus who it belongs to. */
export type StartOptions = Omit<CreateTaskInput, 'type' | 'input'> & {
  /** The same key with the same type and input returns the task it started instead of another. */
  idempotencyKey?: string;
  /** The API key owner the task belongs to, when keys are on (the dashboard shows each owner its own). */
  owner?: string;
};

export type ListOptions = Partial<Omit<ListTasksInput, 'limit'>> & { limit?: number };

/** Node's request listener: for Express, Fastify (`reply.raw`) or a plain `node:http` server. */
export type NodeRequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface TaskstreamInstance<T extends AnyTaskDefinition = AnyTaskDefinition> {
  /** The Hono app: the API, the dashboard at `/` and the docs at `/docs`. Mount it under any prefix. */
  readonly app: TaskstreamCore['app'];
  /**
   * The same app as a Node request listener. It serves under `basePath`, or under the
   * mount path Express gives it (`req.baseUrl`).
   */
  readonly handler: NodeRequestHandler;
  /** Validates `input` against the task type's schema (an AppError `validation_failed` if bad) and queues the task. */
  start<K extends TaskTypeName<T>>(type: K, input: TaskInput<T, K>, options?: StartOptions): Promise<TaskSnapshot>;
  get(taskId: string): Promise<TaskSnapshot>;
  list(options?: ListOptions): Promise<{ tasks: TaskSnapshot[]; next_cursor: string | null }>;
  cancel(taskId: string): Promise<TaskSnapshot>;
  /** The task once it has ended, or as it is after `timeoutMs`. */
  wait(taskId: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<TaskSnapshot>;
  /**
   * The task's events after `after` (a seq; 0 for all retained): history, then live ones,
   * ending after the terminal event (or when the task is deleted or evicted).
   */
  events(taskId: string, options?: { after?: number }): AsyncIterableIterator<TaskEvent>;
  /**
   * Stops taking tasks, lets running ones finish for `graceMs` (shutdownGraceMs by default),
   * cancels the rest, ends every stream after its terminal event and stops the workers.
   * Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The longest a Node timer can wait. */
const FOREVER_MS = 2_147_483_647;

/**
 * Builds a taskstream inside your process: the task service, its worker threads and its
 * HTTP app, ready to mount. Reads no environment variable: settings come from `options`
 * (each validated; a bad one throws a ConfigError naming it). A task module that cannot be
 * loaded throws a TaskModuleError naming its file, and nothing is left running.
 */
export async function createTaskstream<T extends AnyTaskDefinition = AnyTaskDefinition>(
  options: CreateTaskstreamOptions = {},
): Promise<TaskstreamInstance<T>> {
  const { tasks, withExamples = false, basePath, logger, ...settings } = options;
  const config = configFromOptions(settings);
  const fixedBase = basePath === undefined ? undefined : normalizeBasePath(basePath);
  const taskModules =
    tasks === undefined || tasks.length === 0
      ? [...builtInTaskModules]
      : [...(withExamples ? builtInTaskModules : []), ...resolveTaskModules(tasks)];
  let seenBase = '';
  const core = await buildTaskstream(config, {
    taskModules,
    ...(logger ? { logger } : {}),
    onMountPath: (path) => (seenBase = path),
  });
  const { service, registry, app } = core;
  const createSchema = registry.createRequestSchema(config.maxTaskTimeoutMs);

  /** URLs made outside a request carry the known mount path; no caller, so no stream token. */
  const present = (record: TaskRecord): TaskSnapshot =>
    presentSnapshot(toSnapshot(record), { basePath: fixedBase ?? seenBase }).snapshot;

  const start: TaskstreamInstance<T>['start'] = async (type, input, startOptions = {}) => {
    const { idempotencyKey, owner, ...taskOptions } = startOptions;
    const parsed = createSchema.safeParse({ type, input, ...taskOptions });
    if (!parsed.success) throw errors.validation(fieldErrors(parsed.error), `The input of ${String(type)} is not valid`);
    const { record } = await service.create(parsed.data as CreateTaskInput, { idempotencyKey, owner });
    return present(record);
  };

  const events = async function* (taskId: string, { after = 0 }: { after?: number } = {}): AsyncGenerator<TaskEvent> {
    const live: TaskEvent[] = [];
    let removed = false;
    let wake: (() => void) | undefined;
    const { subscription } = await service.subscribe(taskId, after, {
      deliver: (logged) => {
        live.push(logged.event as TaskEvent);
        wake?.();
      },
      removed: () => {
        removed = true;
        wake?.();
      },
    });
    try {
      // The caller already has the terminal event: nothing more will come.
      if (subscription.ended) return;
      // History first, then live events; a live event also in the history is skipped.
      let lastSeq = after;
      const pending = [...subscription.history.map((logged) => logged.event as TaskEvent)];
      for (;;) {
        pending.push(...live.splice(0));
        for (const event of pending.splice(0)) {
          if (event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          yield event;
          if (isTerminalEvent(event)) return;
        }
        if (live.length > 0) continue;
        if (removed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      subscription.unsubscribe();
    }
  };

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (graceMs = config.shutdownGraceMs) =>
    (shuttingDown ??= (async () => {
      await core.drain(graceMs);
      await core.close();
    })());

  return {
    app,
    handler: nodeHandler(app, fixedBase ?? ''),
    start,
    get: async (taskId) => present(await service.get(taskId)),
    list: async ({ limit = 50, ...filters } = {}) => {
      const page = await service.list({ ...filters, limit });
      return { tasks: page.tasks.map(present), next_cursor: page.next_cursor };
    },
    cancel: async (taskId) => present(await service.cancel(taskId)),
    wait: async (taskId, { timeoutMs = FOREVER_MS, signal } = {}) => {
      const record = await service.waitForEnd(taskId, Math.min(timeoutMs, FOREVER_MS), signal);
      if (!record) throw errors.taskNotFound(taskId);
      return present(record);
    },
    events,
    shutdown,
  };
}

/**
 * A Node listener for `app` served under `basePath`, or under the path Express mounted it
 * at (`req.baseUrl`, with `req.url` relative to it). One Hono wrapper per prefix, so the
 * app sees whole paths and its URLs carry the prefix.
 */
function nodeHandler(app: TaskstreamCore['app'], basePath: string): NodeRequestHandler {
  const listeners = new Map<string, ReturnType<typeof getRequestListener>>();
  const listenerAt = (prefix: string) => {
    let listener = listeners.get(prefix);
    if (!listener) {
      const outer = prefix === '' ? app : new Hono().route(prefix, app);
      if (prefix !== '') {
        outer.notFound((c) => problemResponse(c, new AppError('not_found', `No route for ${c.req.method} ${c.req.path}`)));
      }
      listener = getRequestListener(outer.fetch);
      listeners.set(prefix, listener);
    }
    return listener;
  };
  return (request, response) => {
    const express = request as IncomingMessage & { baseUrl?: unknown; originalUrl?: unknown };
    let prefix = basePath;
    if (typeof express.baseUrl === 'string' && express.baseUrl !== '' && typeof express.originalUrl === 'string') {
      prefix = normalizeBasePath(express.baseUrl);
      request.url = express.originalUrl;
    }
    // The dashboard lives at the mount path itself; `/jobs/` is the same page as `/jobs`.
    if (prefix !== '' && request.url !== undefined && (request.url === `${prefix}/` || request.url.startsWith(`${prefix}/?`))) {
      request.url = prefix + request.url.slice(prefix.length + 1);
    }
    void listenerAt(prefix)(request, response);
  };
}

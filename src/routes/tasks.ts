import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { AppError, errors } from '../errors.ts';
import { TaskStatusSchema } from '../events.ts';
import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { AuthEnv, Caller } from '../http/auth.ts';
import { limitBody } from '../http/body-limit.ts';
import { problemDoc as problem } from '../http/problem.ts';
import type { SseHub } from '../http/sse.ts';
import type { TaskService } from '../service.ts';
import { TaskSnapshotSchema, toSnapshot, type TaskRecord } from '../task-record.ts';
import type { TaskRegistry } from '../tasks/registry.ts';
import { validationHook } from './validation.ts';

export interface TaskRoutesOptions {
  service: TaskService;
  registry: TaskRegistry;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
  retentionMs: number;
  hub: SseHub;
  /** Owners who may pause intake and run the reaper; with authentication off, everyone. */
  adminOwners: readonly string[];
  /** Set when authentication is on: each snapshot's stream_url then carries a stream token. */
  streamTokens?: StreamTokens | undefined;
}

const MAX_WAIT_MS = 600_000;

export const TaskIdParams = z.object({
  task_id: z.string().describe('The task id').meta({ param: { name: 'task_id', in: 'path' } }),
});

const TaskListSchema = z
  .object({
    tasks: z.array(TaskSnapshotSchema),
    next_cursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last'),
  })
  .meta({ id: 'TaskList' });

const LABEL_FILTER = /^[^:]{1,63}:.{0,256}$/;

const ListQuery = z.object({
  status: TaskStatusSchema.optional(),
  type: z.string().max(64).optional(),
  label: z
    .union([z.string().regex(LABEL_FILTER, 'use key:value'), z.array(z.string().regex(LABEL_FILTER, 'use key:value')).max(20)])
    .optional()
    .describe('`key:value`; repeat to require several labels'),
  limit: z.coerce.number().int().min(1).max(1000).default(50).describe('Page size'),
  cursor: z.string().max(200).optional().describe('The `next_cursor` of the previous page'),
});

/**
 * `key:value` filters → { key: value } (the first colon separates). Null when one key is
 * asked for two values: all must match, and no task has both.
 */
function labelFilter(label: string | string[] | undefined): Record<string, string> | null | undefined {
  if (label === undefined) return undefined;
  const filter = new Map<string, string>();
  for (const pair of [label].flat()) {
    const colon = pair.indexOf(':');
    const [key, value] = [pair.slice(0, colon), pair.slice(colon + 1)];
    if (filter.has(key) && filter.get(key) !== value) return null;
    filter.set(key, value);
  }
  return Object.fromEntries(filter);
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const StatsSchema = z
  .object({
    tasks: z.object(Object.fromEntries(TaskStatusSchema.options.map((status) => [status, z.int()])) as Record<
      z.infer<typeof TaskStatusSchema>,
      z.ZodInt
    >),
    workers: z.object({ max: z.int(), busy: z.int() }),
    queue: z.object({ size: z.int(), max: z.int() }),
    streams: z.int().describe('Open SSE streams'),
    paused: z.boolean().describe('Whether intake is paused (tasks are accepted but none start)'),
  })
  .meta({ id: 'Stats' });

const QueueStateSchema = z
  .object({ paused: z.boolean(), size: z.int(), max: z.int() })
  .meta({ id: 'QueueState' });

const ReaperStatusSchema = z
  .object({
    retention_ms: z.int().describe('How long an ended task stays readable'),
    interval_ms: z
      .int()
      .describe('0: there is no periodic sweep; one timer fires at each task\'s expiry, to the millisecond'),
    last_run_at: z.iso.datetime().nullable(),
    evicted_total: z.int(),
  })
  .meta({ id: 'ReaperStatus' });

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

const TaskTypeListSchema = z
  .object({
    task_types: z.array(
      z.object({
        type: z.string(),
        description: z.string(),
        input_schema: z.record(z.string(), z.unknown()).describe('JSON Schema of the input'),
        result_schema: z.record(z.string(), z.unknown()).describe('JSON Schema of the result'),
        example: z.unknown().describe('A valid input'),
      }),
    ),
  })
  .meta({ id: 'TaskTypeList' });

const snapshot = (description: string) => ({
  description,
  content: { 'application/json': { schema: TaskSnapshotSchema } },
});

/** Create, read, list, cancel and delete tasks, and describe the task types. */
export function taskRoutes(options: TaskRoutesOptions) {
  const { service, registry, maxTaskTimeoutMs, bodyLimitBytes, retentionMs, hub, streamTokens, adminOwners } = options;

  /** Service-wide operations affect every owner: with keys on, only admins may run them. */
  const assertAdmin = ({ owner }: Caller) => {
    if (owner !== undefined && !adminOwners.includes(owner)) {
      throw errors.forbidden(`${owner} may not do this: it affects every owner (see ADMIN_OWNERS)`);
    }
  };
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  const CreateTaskRequest = registry.createRequestSchema(maxTaskTimeoutMs);

  /** The snapshot as `caller` gets it: with auth on, its stream_url opens with no headers. */
  const present = (caller: Caller, record: TaskRecord) => {
    const snapshot = toSnapshot(record);
    if (!streamTokens || caller.owner === undefined) return snapshot;
    const { token } = streamTokens.mint(caller.owner, [record.task_id]);
    return { ...snapshot, stream_url: `${snapshot.stream_url}?token=${token}` };
  };

  app.use('/tasks', async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const contentType = c.req.header('content-type') ?? '';
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
      throw errors.unsupportedMediaType(contentType);
    }
    return next();
  });
  app.use('/tasks', limitBody(bodyLimitBytes));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks',
      operationId: 'createTask',
      summary: 'Start a task',
      description:
        'Validates the input against the task type\'s schema and queues the task. With an `Idempotency-Key` already used for the same body, answers 200 with that task instead of starting another; with a different body, 422.',
      request: {
        headers: z.object({
          'idempotency-key': z
            .string()
            .optional()
            .describe('Makes the request safe to repeat: 1-255 visible ASCII characters; lives as long as its task'),
        }),
        body: { required: true, content: { 'application/json': { schema: CreateTaskRequest } } },
      },
      responses: {
        200: snapshot('The task an earlier request with the same Idempotency-Key and body created'),
        201: {
          ...snapshot('Queued. `Location` names the task.'),
          headers: { Location: { schema: { type: 'string' }, description: 'The task\'s URL' } },
        },
        400: problem('Malformed JSON, or a bad Idempotency-Key'),
        413: problem('Body too large'),
        415: problem('Not JSON'),
        422: problem('Unknown type or bad input (`errors` points at the fields), or an Idempotency-Key reused with another body'),
        503: problem('The queue is full; retry after `Retry-After` seconds'),
      },
    }),
    async (c) => {
      const idempotencyKey = c.req.header('idempotency-key');
      if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
        throw new AppError('invalid_request', 'Idempotency-Key must be 1-255 visible ASCII characters', {
          errors: [{ pointer: '/idempotency-key', detail: 'expected 1-255 visible ASCII characters' }],
        });
      }
      const caller = c.get('caller');
      const { record, created } = await service.create(c.req.valid('json'), { idempotencyKey, owner: caller.owner });
      c.header('location', `/api/tasks/${record.task_id}`);
      return created ? c.json(present(caller, record), 201) : c.json(present(caller, record), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tasks',
      operationId: 'clearTasks',
      summary: 'Delete every task that ended with a status',
      description: 'Never touches a queued or running task. Their open streams end.',
      request: { query: z.object({ status: z.enum(['completed', 'failed', 'cancelled']) }) },
      responses: {
        200: json(z.object({ deleted: z.int() }).meta({ id: 'Cleared' }), 'How many were deleted'),
        400: problem('Missing or non-terminal status'),
      },
    }),
    async (c) => c.json({ deleted: await service.clear(c.req.valid('query').status, c.get('caller').owner) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/stats',
      operationId: 'getStats',
      summary: 'Counts per status, workers, queue, streams and intake',
      responses: { 200: json(StatsSchema, 'Current figures') },
    }),
    async (c) => {
      const { owner } = c.get('caller');
      const [stats, tasks] = await Promise.all([service.stats(), service.taskCounts(owner)]);
      return c.json(
        {
          tasks,
          workers: { max: stats.maxWorkers, busy: stats.running },
          queue: { size: stats.queued, max: stats.maxQueue },
          streams: hub.streamsOf(owner),
          paused: stats.paused,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks',
      operationId: 'listTasks',
      summary: 'List tasks, newest first',
      request: { query: ListQuery },
      responses: {
        200: { description: 'A page of tasks', content: { 'application/json': { schema: TaskListSchema } } },
        400: problem('Bad query parameter'),
      },
    }),
    async (c) => {
      const { label, ...query } = c.req.valid('query');
      const caller = c.get('caller');
      const labels = labelFilter(label);
      // Listed even when no task can match, so that a bad cursor is still refused.
      const { tasks, next_cursor } = await service.list({ ...query, labels: labels ?? undefined, owner: caller.owner });
      if (labels === null) return c.json({ tasks: [], next_cursor: null }, 200);
      return c.json({ tasks: tasks.map((task) => present(caller, task)), next_cursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}',
      operationId: 'getTask',
      summary: 'Read a task',
      request: { params: TaskIdParams },
      responses: { 200: snapshot('The task'), 404: problem('No such task (or evicted)') },
    }),
    async (c) => {
      const caller = c.get('caller');
      return c.json(present(caller, await service.get(c.req.valid('param').task_id, caller.owner)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{task_id}/cancel',
      operationId: 'cancelTask',
      summary: 'Cancel a task',
      description:
        'A queued task ends at once. A running task sees its signal abort; if it has not stopped after the grace period its thread is terminated. Either way the stream ends with one `task_cancelled`.',
      request: { params: TaskIdParams },
      responses: {
        202: snapshot('Cancellation accepted; the snapshot as of now'),
        404: problem('No such task'),
        409: problem('The task has already ended'),
      },
    }),
    async (c) => {
      const caller = c.get('caller');
      return c.json(present(caller, await service.cancel(c.req.valid('param').task_id, caller.owner)), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/{task_id}/retry',
      operationId: 'retryTask',
      summary: 'Start a failed or cancelled task again, as a new task',
      description: 'The new task has the same type, input and options, and `retry_of` naming the old one.',
      request: { params: TaskIdParams },
      responses: {
        201: {
          ...snapshot('The new task'),
          headers: { Location: { schema: { type: 'string' }, description: 'The new task\'s URL' } },
        },
        404: problem('No such task'),
        409: problem('The task is queued, running or completed'),
        503: problem('The queue is full'),
      },
    }),
    async (c) => {
      const caller = c.get('caller');
      const record = await service.retry(c.req.valid('param').task_id, caller.owner);
      c.header('location', `/api/tasks/${record.task_id}`);
      return c.json(present(caller, record), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}/wait',
      operationId: 'waitForTask',
      summary: 'Long-poll until the task ends or the timeout passes',
      description: 'For clients that cannot hold a stream. Answers with the snapshot either way: check `status`.',
      request: {
        params: TaskIdParams,
        query: z.object({
          timeout_ms: z.coerce
            .number()
            .int()
            .min(0)
            .max(MAX_WAIT_MS)
            .default(30_000)
            .describe('How long to wait at most'),
        }),
      },
      responses: {
        200: snapshot('The task, ended or as it is when the timeout passed'),
        400: problem('Bad timeout_ms'),
        404: problem('No such task, or it was deleted while waiting'),
      },
    }),
    async (c) => {
      const { task_id: taskId } = c.req.valid('param');
      // Coercion would read `timeout_ms=` as 0 and answer at once: refuse it instead.
      if (c.req.query('timeout_ms')?.trim() === '') {
        throw new AppError('invalid_request', 'timeout_ms must be a number of milliseconds', {
          errors: [{ pointer: '/timeout_ms', detail: 'expected an integer from 0 to 600000, got an empty value' }],
        });
      }
      const closed = new AbortController();
      c.env.outgoing.once('close', () => closed.abort());
      const caller = c.get('caller');
      const record = await service.waitForEnd(taskId, c.req.valid('query').timeout_ms, closed.signal, caller.owner);
      if (!record) throw errors.taskNotFound(taskId);
      return c.json(present(caller, record), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/tasks/{task_id}',
      operationId: 'deleteTask',
      summary: 'Delete an ended task',
      request: { params: TaskIdParams },
      responses: {
        204: { description: 'Deleted; its open streams end' },
        404: problem('No such task'),
        409: problem('The task is still queued or running: cancel it first'),
      },
    }),
    async (c) => {
      await service.remove(c.req.valid('param').task_id, c.get('caller').owner);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/task-types',
      operationId: 'listTaskTypes',
      summary: 'Describe every task type',
      responses: {
        200: { description: 'The task types', content: { 'application/json': { schema: TaskTypeListSchema } } },
      },
    }),
    (c) => c.json({ task_types: registry.describe() as z.infer<typeof TaskTypeListSchema>['task_types'] }, 200),
  );

  const queueState = async () => {
    const { paused, queued, maxQueue } = await service.stats();
    return { paused, size: queued, max: maxQueue };
  };
  for (const action of ['pause', 'resume'] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/queue/${action}`,
        operationId: `${action}Queue`,
        summary:
          action === 'pause'
            ? 'Pause intake: new tasks are accepted and queued, but none start; running tasks go on'
            : 'Resume intake: queued tasks start again',
        responses: { 200: json(QueueStateSchema, 'The queue now'), 403: problem('Not an admin owner (with API_KEYS)') },
      }),
      async (c) => {
        assertAdmin(c.get('caller'));
        if (action === 'pause') await service.pause();
        else await service.resume();
        return c.json(await queueState(), 200);
      },
    );
  }

  const reaperStatus = () => {
    const { lastRunAt, evictedTotal } = service.reaperStatus;
    return {
      retention_ms: retentionMs,
      interval_ms: 0,
      last_run_at: lastRunAt === null ? null : new Date(lastRunAt).toISOString(),
      evicted_total: evictedTotal,
    };
  };
  app.openapi(
    createRoute({
      method: 'get',
      path: '/reaper',
      operationId: 'getReaper',
      summary: 'The reaper: retention, last run and evictions so far',
      responses: { 200: json(ReaperStatusSchema, 'Reaper status') },
    }),
    (c) => c.json(reaperStatus(), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/reaper/run',
      operationId: 'runReaper',
      summary: 'Evict every ended task whose retention is over, now',
      responses: {
        200: json(z.object({ evicted: z.int() }).meta({ id: 'ReaperRun' }), 'How many were evicted'),
        403: problem('Not an admin owner (with API_KEYS)'),
      },
    }),
    async (c) => {
      assertAdmin(c.get('caller'));
      return c.json({ evicted: await service.reap() }, 200);
    },
  );

  return app;
}

import type { HttpBindings } from '@hono/node-server';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { AppError } from '../errors.ts';
import { TaskStatusSchema } from '../events.ts';
import { problemDoc as problem } from '../http/problem.ts';
import type { TaskService } from '../service.ts';
import { TaskSnapshotSchema, toSnapshot } from '../task-record.ts';
import type { TaskRegistry } from '../tasks/registry.ts';
import { validationHook } from './validation.ts';

export interface TaskRoutesOptions {
  service: TaskService;
  registry: TaskRegistry;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
}

export const TaskIdParams = z.object({
  task_id: z.string().describe('The task id').meta({ param: { name: 'task_id', in: 'path' } }),
});

const TaskListSchema = z
  .object({
    tasks: z.array(TaskSnapshotSchema),
    next_cursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last'),
  })
  .meta({ id: 'TaskList' });

const ListQuery = z.object({
  status: TaskStatusSchema.optional(),
  type: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50).describe('Page size'),
  cursor: z.string().max(200).optional().describe('The `next_cursor` of the previous page'),
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
export function taskRoutes({ service, registry, maxTaskTimeoutMs, bodyLimitBytes }: TaskRoutesOptions) {
  const app = new OpenAPIHono<{ Bindings: HttpBindings }>({ defaultHook: validationHook });
  const CreateTaskRequest = registry.createRequestSchema(maxTaskTimeoutMs);

  app.use('/tasks', async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const contentType = c.req.header('content-type') ?? '';
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
      throw new AppError('unsupported_media_type', 'Send the body as application/json', {
        errors: [{ pointer: '/content-type', detail: `expected application/json, got ${JSON.stringify(contentType)}` }],
      });
    }
    return next();
  });
  app.use(
    '/tasks',
    bodyLimit({
      maxSize: bodyLimitBytes,
      onError: () => {
        throw new AppError('payload_too_large', `The request body is larger than ${bodyLimitBytes} bytes`);
      },
    }),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks',
      operationId: 'createTask',
      summary: 'Start a task',
      description: 'Validates the input against the task type\'s schema and queues the task.',
      request: { body: { required: true, content: { 'application/json': { schema: CreateTaskRequest } } } },
      responses: {
        201: {
          ...snapshot('Queued. `Location` names the task.'),
          headers: { Location: { schema: { type: 'string' }, description: 'The task\'s URL' } },
        },
        400: problem('Malformed JSON'),
        413: problem('Body too large'),
        415: problem('Not JSON'),
        422: problem('Unknown type or bad input; `errors` points at the fields'),
        503: problem('The queue is full; retry after `Retry-After` seconds'),
      },
    }),
    (c) => {
      const record = service.create(c.req.valid('json'));
      c.header('location', `/api/tasks/${record.task_id}`);
      return c.json(toSnapshot(record), 201);
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
    (c) => {
      const { tasks, next_cursor } = service.list(c.req.valid('query'));
      return c.json({ tasks: tasks.map(toSnapshot), next_cursor }, 200);
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
    (c) => c.json(toSnapshot(service.get(c.req.valid('param').task_id)), 200),
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
    (c) => c.json(toSnapshot(service.cancel(c.req.valid('param').task_id)), 202),
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
    (c) => {
      service.remove(c.req.valid('param').task_id);
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

  return app;
}

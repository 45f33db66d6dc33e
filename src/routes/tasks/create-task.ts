import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { AppError, errors } from '../../errors.ts';
import type { AuthEnv } from '../../http/auth.ts';
import { limitBody } from '../../http/body-limit.ts';
import { problemDoc as problem } from '../../http/problem.ts';
import type { TaskService } from '../../service.ts';
import type { TaskRegistry } from '../../tasks/registry.ts';
import { createUnavailable, locatedSnapshot } from '../responses.ts';
import type { Present } from '../task-presenter.ts';
import { validationHook } from '../validation.ts';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export interface CreateTaskRouteOptions {
  service: TaskService;
  registry: TaskRegistry;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
  present: Present;
}

/** POST /tasks: validate the input against its type's schema and queue the task. */
export function createTaskRoute({ service, registry, maxTaskTimeoutMs, bodyLimitBytes, present }: CreateTaskRouteOptions) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  const CreateTaskRequest = registry.createRequestSchema(maxTaskTimeoutMs);

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
        200: locatedSnapshot('The task an earlier request with the same Idempotency-Key and body created'),
        201: locatedSnapshot('Queued. `Location` names the task.'),
        400: problem('Malformed JSON, or a bad Idempotency-Key'),
        413: problem('Body too large'),
        415: problem('Not JSON'),
        422: problem('Unknown type or bad input (`errors` points at the fields), or an Idempotency-Key reused with another body'),
        503: createUnavailable,
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
      c.header('location', `${c.get('basePath')}/api/tasks/${record.task_id}`);
      return created ? c.json(present(caller, record, c.get('basePath')), 201) : c.json(present(caller, record, c.get('basePath')), 200);
    },
  );
  return app;
}

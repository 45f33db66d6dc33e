import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { StreamTokens } from '../auth/stream-tokens.ts';
import { AppError, errors, type FieldError } from '../errors.ts';
import type { AuthEnv } from '../http/auth.ts';
import { limitBody } from '../http/body-limit.ts';
import { fieldErrors, problemDoc as problem } from '../http/problem.ts';
import type { TaskService } from '../service.ts';
import { TaskSnapshotSchema } from '../task-record.ts';
import type { TaskRegistry } from '../tasks/registry.ts';
import { taskPresenter } from './task-presenter.ts';
import { validationHook } from './validation.ts';

export interface TaskBatchRoutesOptions {
  service: TaskService;
  registry: TaskRegistry;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
  /** Set when authentication is on: each snapshot's stream_url then carries a stream token. */
  streamTokens?: StreamTokens | undefined;
}

/** Items one bulk create may carry. */
export const MAX_BATCH_ITEMS = 1000;

const JSON_CONTENT_TYPE = /^application\/([\w.+-]+\+)?json\s*(;|$)/i;

const ItemErrorSchema = z
  .object({
    code: z.string().describe('The code a single create would have answered with'),
    detail: z.string(),
    errors: z
      .array(
        z.object({
          pointer: z.string().describe('JSON Pointer into the whole body: `/items/{index}/...`'),
          detail: z.string(),
        }),
      )
      .optional(),
  })
  .meta({ id: 'BatchItemError' });

const BatchResultSchema = z
  .object({
    items: z.array(
      z.object({
        index: z.int().describe('The item\'s place in the request'),
        status: z
          .int()
          .describe('What a single create would have answered: 201 created, 200 an earlier task with the same idempotency_key and body, 422 or 503 not created'),
        task: TaskSnapshotSchema.nullable().describe('The task; null when not created'),
        error: ItemErrorSchema.nullable().describe('Why the item was not created; null when it was'),
      }),
    ),
    created: z.int().describe('Items that started a new task'),
    failed: z.int().describe('Items that did not (error is set)'),
  })
  .meta({ id: 'BatchCreateResult' });

type ItemResult = z.infer<typeof BatchResultSchema>['items'][number];

/**
 * `POST /tasks/batch`: many creates in one request. Each item stands alone, exactly as if
 * it had been its own `POST /tasks`: validated on its own, its own task, snapshot, events
 * and idempotency key, and its own failure (bad input, queue full) reported at its index
 * while the others go ahead. There is deliberately no all-or-nothing mode: with several
 * instances sharing a queue, "every item fits" cannot be promised without a transaction
 * spanning the store and the queue, and a partial answer with per-item results is what a
 * client needs to retry exactly the items that failed.
 */
export function taskBatchRoutes(options: TaskBatchRoutesOptions) {
  const { service, registry, maxTaskTimeoutMs, bodyLimitBytes, streamTokens } = options;
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  const ItemSchema = registry.batchItemSchema(maxTaskTimeoutMs);
  const BatchRequestSchema = z
    .object({
      items: z
        .array(ItemSchema)
        .min(1)
        .max(MAX_BATCH_ITEMS)
        .describe(`1 to ${MAX_BATCH_ITEMS} create requests, each with an optional idempotency_key`),
    })
    .meta({ id: 'BatchCreateRequest' });
  // Documented with the real item schema, but not validated as a whole by the framework:
  // one bad item must not fail the others, so the handler validates each one itself.
  app.openAPIRegistry.register('BatchCreateRequest', BatchRequestSchema);
  const Envelope = z.object({ items: z.array(z.unknown()).min(1).max(MAX_BATCH_ITEMS) });

  const present = taskPresenter(streamTokens);

  app.use('/tasks/batch', async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const contentType = c.req.header('content-type') ?? '';
    if (!JSON_CONTENT_TYPE.test(contentType)) throw errors.unsupportedMediaType(contentType);
    return next();
  });
  app.use('/tasks/batch', limitBody(bodyLimitBytes));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/tasks/batch',
      operationId: 'createTasks',
      summary: 'Start many tasks in one request',
      description: [
        `Up to ${MAX_BATCH_ITEMS} create requests. Each item is handled as its own \`POST /api/tasks\`:`,
        'validated on its own, its own task, snapshot and events, its own `idempotency_key`. An item',
        'that fails (bad input: 422 with pointers `/items/{index}/...`; queue full: 503 `queue_full`)',
        'is reported at its index and does not stop the others; the answer is 200 whenever the body',
        'itself is well formed. There is no all-or-nothing mode: retry the items that failed.',
      ].join(' '),
      request: {
        body: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchCreateRequest' } } },
        },
      },
      responses: {
        200: {
          description: 'One result per item, in request order',
          content: { 'application/json': { schema: BatchResultSchema } },
        },
        400: problem('Malformed JSON, or an `atomic` parameter (there is no all-or-nothing mode)'),
        413: problem('Body too large (BODY_LIMIT_BYTES bounds the whole batch)'),
        415: problem('Not JSON'),
        422: problem(`\`items\` missing, empty or longer than ${MAX_BATCH_ITEMS}`),
      },
    }),
    async (c) => {
      if (c.req.query('atomic') !== undefined) {
        // Refused rather than ignored: a client asking for all-or-nothing must not get less.
        throw new AppError('invalid_request', 'Bulk create has no all-or-nothing mode', {
          errors: [{ pointer: '/atomic', detail: 'not supported: items are created one by one; retry those that failed' }],
        });
      }
      let body: unknown;
      try {
        body = await c.req.json();
      } catch (error) {
        throw new AppError('malformed_json', 'The request body is not valid JSON', { cause: error });
      }
      const envelope = Envelope.safeParse(body);
      if (!envelope.success) throw errors.validation(fieldErrors(envelope.error), 'The request body is not valid');
      const caller = c.get('caller');
      const results: ItemResult[] = [];
      let created = 0;
      for (const [index, item] of envelope.data.items.entries()) {
        const parsed = ItemSchema.safeParse(item);
        if (!parsed.success) {
          results.push(failure(index, errors.validation(fieldErrors(parsed.error, ['items', index]), 'The item is not valid')));
          continue;
        }
        const { idempotency_key: idempotencyKey, ...request } = parsed.data;
        try {
          const outcome = await service.create(request, { idempotencyKey, owner: caller.owner });
          if (outcome.created) created++;
          results.push({ index, status: outcome.created ? 201 : 200, task: present(caller, outcome.record, c.get('basePath')), error: null });
        } catch (error) {
          if (!(error instanceof AppError)) throw error;
          results.push(failure(index, error));
        }
      }
      return c.json({ items: results, created, failed: results.filter((result) => result.error).length }, 200);
    },
  );

  return app;
}

/** An item that was not created, with pointers made absolute within the whole body. */
function failure(index: number, error: AppError): ItemResult {
  const prefix = `/items/${index}`;
  const fields: FieldError[] | undefined = error.errors?.map(({ pointer, detail }) => ({
    // The service points at the Idempotency-Key header; in a batch the key is a field.
    pointer: pointer.startsWith(prefix) ? pointer : pointer === '/idempotency-key' ? `${prefix}/idempotency_key` : `${prefix}${pointer}`,
    detail,
  }));
  return {
    index,
    status: error.status,
    task: null,
    error: { code: error.code, detail: error.message, ...(fields ? { errors: fields } : {}) },
  };
}

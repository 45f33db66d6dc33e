import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { AuthEnv } from '../http/auth.ts';
import { limitBody } from '../http/body-limit.ts';
import { problemDoc as problem } from '../http/problem.ts';
import type { TaskService } from '../service.ts';
import { validationHook } from './validation.ts';

const MAX_TOKEN_TASKS = 100;
const MAX_BODY_BYTES = 16 * 1024;

const StreamTokenRequestSchema = z
  .strictObject({
    task_ids: z
      .array(z.string().max(64))
      .min(1)
      .max(MAX_TOKEN_TASKS)
      .optional()
      .describe('Tasks the token may stream; every task of the caller when absent'),
  })
  .meta({ id: 'StreamTokenRequest' });

const StreamTokenSchema = z
  .object({
    token: z.string().describe('Pass as `?token=` on an event stream; it opens nothing else'),
    expires_at: z.iso.datetime(),
    stream_url: z.string().describe('The multiplexed stream, with the token (and the chosen tasks)'),
  })
  .meta({ id: 'StreamToken' });

/** Mints read-only stream tokens, so EventSource can open /api/events with no headers. */
export function streamTokenRoutes({ service, tokens }: { service: TaskService; tokens: StreamTokens }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.use('/stream-tokens', limitBody(MAX_BODY_BYTES));
  app.openapi(
    createRoute({
      method: 'post',
      path: '/stream-tokens',
      operationId: 'createStreamToken',
      summary: 'Mint a stream token for the multiplexed stream',
      description:
        'A signed, expiring, read-only token scoped to the caller, and optionally to chosen tasks. It opens `GET /api/events` (and the per-task streams of the tasks it covers) as `?token=`; it never authorizes creating, cancelling or deleting.',
      request: {
        body: { required: false, content: { 'application/json': { schema: StreamTokenRequestSchema } } },
      },
      responses: {
        201: { description: 'The token', content: { 'application/json': { schema: StreamTokenSchema } } },
        400: problem('The body is not valid JSON'),
        401: problem('No valid API key'),
        404: problem('One of the chosen tasks does not exist (or is not the caller\'s)'),
        413: problem('Body too large'),
        415: problem('A body that is not JSON'),
        422: problem('A bad body (`errors` points at the fields)'),
      },
    }),
    async (c) => {
      const { owner } = c.get('caller');
      const taskIds = c.req.valid('json')?.task_ids ?? null;
      // Every chosen task must be one the caller can see: a token never names another's.
      for (const taskId of taskIds ?? []) await service.get(taskId, owner);
      const { token, expiresAt } = tokens.mint(owner ?? '', taskIds);
      const query = new URLSearchParams((taskIds ?? []).map((id): [string, string] => ['task_id', id]));
      query.set('token', token);
      return c.json({ token, expires_at: new Date(expiresAt).toISOString(), stream_url: `${c.get('basePath')}/api/events?${query}` }, 201);
    },
  );
  return app;
}

import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { LoggedEvent } from '../broker/broker.ts';
import { AppError } from '../errors.ts';
import { isTerminal, isTerminalEvent, TaskEventSchema } from '../events.ts';
import { problemDoc as problem } from '../http/problem.ts';
import { frameOf, type SseHub, type SseStream } from '../http/sse.ts';
import type { TaskService } from '../service.ts';
import { TaskIdParams } from './tasks.ts';
import { validationHook } from './validation.ts';

export interface EventRoutesOptions {
  service: TaskService;
  hub: SseHub;
}

const EVENT_ID = /^\d{1,15}$/;

/** The id to resume after: the Last-Event-ID header, else the last_event_id query parameter. */
function resumeAfter(header: string | undefined, query: string | undefined): number {
  const raw = header ?? query;
  if (raw === undefined || raw === '') return 0;
  if (!EVENT_ID.test(raw)) {
    const pointer = header !== undefined ? '/last-event-id' : '/last_event_id';
    throw new AppError('invalid_request', 'Last-Event-ID must be an event id this stream sent', {
      errors: [{ pointer, detail: `expected a non-negative integer, got ${JSON.stringify(raw)}` }],
    });
  }
  return Number(raw);
}

/** Per-task Server-Sent Events streams. */
export function eventRoutes({ service, hub }: EventRoutesOptions) {
  const app = new OpenAPIHono<{ Bindings: HttpBindings }>({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/tasks/{task_id}/events',
      operationId: 'streamTaskEvents',
      summary: 'Stream a task\'s events (Server-Sent Events)',
      description: [
        'First the retained history, then live events. Each frame has `id:` (the event\'s `seq`),',
        '`event:` (its `event_type`) and one `data:` line holding the JSON envelope. The last event',
        'is always exactly one of `task_completed`, `task_failed` or `task_cancelled`; then the',
        'response ends. Resume with `Last-Event-ID` (or `last_event_id`): no duplicates, no gaps',
        '(a flood of progress may have been thinned to its most recent events). Heartbeat',
        'comments keep idle connections open.',
      ].join(' '),
      request: {
        params: TaskIdParams,
        headers: z.object({
          'last-event-id': z.string().optional().describe('Resume after this event id'),
        }),
        query: z.object({
          last_event_id: z.string().optional().describe('Same as the Last-Event-ID header, for clients that cannot set headers'),
        }),
      },
      responses: {
        200: {
          description: 'The event stream',
          content: { 'text/event-stream': { schema: TaskEventSchema } },
        },
        204: { description: 'The resume point is already the terminal event: nothing more will come' },
        400: problem('Bad Last-Event-ID'),
        404: problem('No such task (or evicted)'),
      },
    }),
    (c) => {
      const { task_id: taskId } = c.req.valid('param');
      const afterSeq = resumeAfter(c.req.header('last-event-id'), c.req.query('last_event_id'));

      // Set before subscribing; the broker only delivers on later ticks, after it is assigned.
      let stream: SseStream | undefined;
      const send = (logged: LoggedEvent) => {
        if (!stream) return;
        const { event } = logged;
        stream.send(frameOf(logged), event.task_id, event.event_type === 'progress_update');
        if (isTerminalEvent(event)) stream.end();
      };
      const { record, subscription } = service.subscribe(taskId, afterSeq, {
        deliver: send,
        end: () => stream?.end(),
      });

      if (isTerminal(record.status) && subscription.history.length === 0) {
        // The client already has the terminal event: 204 stops EventSource reconnecting.
        subscription.unsubscribe();
        return c.body(null, 204);
      }

      stream = hub.open(c.env.outgoing);
      stream.onClose(subscription.unsubscribe);
      for (const logged of subscription.history) send(logged);
      return RESPONSE_ALREADY_SENT as never;
    },
  );

  return app;
}

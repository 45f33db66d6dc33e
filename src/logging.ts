import { randomUUID } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from 'pino';
import type { TaskService } from './service.ts';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * One log line per request, written when the response is over (for a stream: when it
 * closes). It names the matched route, never the full URL, so query strings stay out.
 */
export function requestLogger(logger: Logger): MiddlewareHandler<{ Bindings: HttpBindings }> {
  return async (c, next) => {
    const started = performance.now();
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.header('x-request-id', requestId);
    const outgoing = c.env.outgoing;
    // Read now, not in the callback: a closure over `c` would keep the whole request
    // context alive for as long as a stream stays open.
    const method = c.req.method;
    const route = routePath(c, -1);
    outgoing.once('close', () => {
      logger.info(
        {
          requestId,
          method,
          route,
          status: outgoing.statusCode,
          durationMs: Math.round((performance.now() - started) * 10) / 10,
        },
        'request',
      );
    });
    await next();
  };
}

/** One log line per task transition. */
export function logTaskTransitions(service: TaskService, logger: Logger): void {
  service.on('transition', (record) => {
    // Checked per call, not once: the level may change while the service runs.
    if (!logger.isLevelEnabled('info')) return;
    const ended = record.finished_at !== null;
    logger.info(
      {
        taskId: record.task_id,
        type: record.type,
        status: record.status,
        ...(ended && record.started_at
          ? { durationMs: Date.parse(record.finished_at!) - Date.parse(record.started_at) }
          : {}),
        ...(record.error ? { errorCode: record.error.code } : {}),
      },
      'task',
    );
  });
}

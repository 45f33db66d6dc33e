import { OpenAPIHono } from '@hono/zod-openapi';
import type { StreamTokens } from '../auth/stream-tokens.ts';
import type { AuthEnv } from '../http/auth.ts';
import type { SseHub } from '../http/sse.ts';
import type { TaskService } from '../service.ts';
import type { TaskRegistry } from '../tasks/registry.ts';
import { taskPresenter } from './task-presenter.ts';
import { cancelTaskRoute } from './tasks/cancel-task.ts';
import { clearTasksRoute } from './tasks/clear-tasks.ts';
import { createTaskRoute } from './tasks/create-task.ts';
import { listTasksRoute } from './tasks/list-tasks.ts';
import { retryTaskRoute } from './tasks/retry-task.ts';
import { taskStatsRoute } from './tasks/task-stats.ts';
import { taskRoute } from './tasks/task.ts';
import { waitForTaskRoute } from './tasks/wait-for-task.ts';
import { validationHook } from './validation.ts';

export interface TaskRoutesOptions {
  service: TaskService;
  registry: TaskRegistry;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
  hub: SseHub;
  /** Set when authentication is on: each snapshot's stream_url then carries a stream token. */
  streamTokens?: StreamTokens | undefined;
}

/**
 * Create, read, list, wait for, cancel, retry and delete tasks: one module per route,
 * joined here. Order matters: /tasks/stats is matched before /tasks/{task_id}.
 */
export function taskRoutes({ service, registry, maxTaskTimeoutMs, bodyLimitBytes, hub, streamTokens }: TaskRoutesOptions) {
  const present = taskPresenter(streamTokens);
  return new OpenAPIHono<AuthEnv>({ defaultHook: validationHook })
    .route('/', createTaskRoute({ service, registry, maxTaskTimeoutMs, bodyLimitBytes, present }))
    .route('/', clearTasksRoute({ service }))
    .route('/', taskStatsRoute({ service, hub }))
    .route('/', listTasksRoute({ service, present }))
    .route('/', taskRoute({ service, present }))
    .route('/', cancelTaskRoute({ service, present }))
    .route('/', retryTaskRoute({ service, present }))
    .route('/', waitForTaskRoute({ service, present, hub }));
}

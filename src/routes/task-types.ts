import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import type { AuthEnv } from '../http/auth.ts';
import type { TaskRegistry } from '../tasks/registry.ts';
import { validationHook } from './validation.ts';

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

/** GET /task-types: every task type, with the JSON Schemas of its input and result. */
export function taskTypeRoutes({ registry }: { registry: TaskRegistry }) {
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
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

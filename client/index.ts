import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, paths } from './schema.d.ts';

// schema.d.ts is generated from openapi.yaml by `npm run client`; never edit it by hand.
type Schemas = components['schemas'];

/** A task's snapshot, as every task route answers it. */
export type Task = Schemas['Task'];
export type TaskStatus = Schemas['TaskStatus'];
/** One frame's envelope on a task's stream: `event_type` tells which `data` it carries. */
export type TaskEvent = Schemas['TaskEvent'];
/** The body of every error answer (application/problem+json, RFC 9457). */
export type Problem = Schemas['Problem'];
/** POST /api/tasks: one branch per task type, told apart by `type`. */
export type CreateTaskRequest = Schemas['CreateTaskRequest'];
export type TaskList = Schemas['TaskList'];
/** POST /api/tasks/batch: up to 1,000 create requests, each with its own idempotency_key. */
export type BatchCreateRequest = Schemas['BatchCreateRequest'];
/** One result per item, in request order: the task, or why that item was not created. */
export type BatchCreateResult = Schemas['BatchCreateResult'];

export type { components, paths };
export type TaskstreamClient = Client<paths>;

/**
 * A client whose paths, parameters, bodies and answers are typed from openapi.yaml. Each call
 * resolves to `{ data, response }` on success or `{ error, response }` with the Problem.
 */
export function createTaskstreamClient(
  baseUrl: string,
  options: Omit<ClientOptions, 'baseUrl'> = {},
): TaskstreamClient {
  return createClient<paths>({ ...options, baseUrl });
}

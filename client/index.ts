import createFetchClient, { type Client, type ClientOptions as FetchClientOptions } from 'openapi-fetch';
import type { components, paths } from './schema.d.ts';
import { watchAllTasks, watchTask, type ResyncEvent, type StreamEvent, type StreamSource, type WatchOptions } from './watch.ts';

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

export type { components, paths, ResyncEvent, StreamEvent, WatchOptions };
export { WatchError } from './watch.ts';

export interface ClientOptions extends Omit<FetchClientOptions, 'baseUrl'> {
  /** Sent as `Authorization: Bearer <key>` on every call and stream. */
  apiKey?: string;
  /** A stream token (from a task's `stream_url` or `POST /api/stream-tokens`): opens streams only. */
  streamToken?: string;
  /** Wait before reconnecting a dropped stream when the server sent no `retry:` hint (1000 ms). */
  reconnectDelayMs?: number;
  /** Consecutive failed connections after which a watch gives up and throws (10). */
  maxReconnects?: number;
}

/**
 * `Paths` is the service's API as openapi-typescript generates it: this package's own
 * (the built-in example task types) by default, or yours, generated from
 * `npx taskstream openapi --tasks ./tasks`, so request bodies name your task types.
 */
export type TaskstreamClient<Paths extends {} = paths> = Client<Paths> & {
  /**
   * A task's events, typed, over SSE: the retained history then live events, ending after
   * the terminal event. A dropped connection is resumed with `Last-Event-ID`: no event is
   * missed or repeated. Throws a WatchError for an answer that is not a stream (404: unknown task).
   */
  watch(taskId: string, options?: WatchOptions): AsyncGenerator<TaskEvent>;
  /**
   * The multiplexed stream: with `taskIds`, those tasks' events, ending once each has ended;
   * without, every task's events (and `task_created`, `task_removed`, `resync`) until
   * `signal` aborts or the loop breaks.
   */
  watchAll(options?: WatchOptions & { taskIds?: readonly string[] }): AsyncGenerator<StreamEvent | ResyncEvent>;
};

/**
 * A client whose paths, parameters, bodies and answers are typed from openapi.yaml. Each
 * call resolves to `{ data, response }` on success or `{ error, response }` with the
 * Problem. Works wherever `fetch` and web streams do: Node 20 and browsers.
 */
export function createClient<Paths extends {} = paths>(baseUrl: string, options: ClientOptions = {}): TaskstreamClient<Paths> {
  const { apiKey, streamToken, reconnectDelayMs = 1000, maxReconnects = 10, ...fetchOptions } = options;
  const headers = { ...(fetchOptions.headers as Record<string, string> | undefined) };
  if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
  const client = createFetchClient<Paths>({ ...fetchOptions, baseUrl, headers });
  const customFetch = fetchOptions.fetch;
  const source: StreamSource = {
    baseUrl,
    // openapi-fetch hands its fetch a Request; so do streams.
    fetch: customFetch ? (input, init) => customFetch(new Request(input, init)) : (input, init) => globalThis.fetch(input, init),
    apiKey,
    streamToken,
    reconnectDelayMs,
    maxReconnects,
  };
  return Object.assign(client, {
    watch: (taskId: string, watchOptions?: WatchOptions) => watchTask(source, taskId, watchOptions),
    watchAll: (watchOptions?: WatchOptions & { taskIds?: readonly string[] }) => watchAllTasks(source, watchOptions),
  });
}

/** The earlier name of createClient. */
export const createTaskstreamClient = createClient;

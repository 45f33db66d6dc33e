/**
 * The recorded requests the spec-conformance test replays against a real server, in order.
 * Each answer is checked against openapi.yaml; every status the spec documents must be
 * answered by at least one of them. A new route or a new documented answer needs a line here.
 *
 * Placeholders in `path` and `body` are filled in by the test (see ReplayContext):
 * `{completed}`, `{failed}`, `{running}`, `{queued}` name tasks the profile's setup made;
 * `{fresh}` is a new queued task made just before the request, `{freshCancelled}` one that was
 * cancelled at once; `{unknown}` is a task id that never existed; `{completedLastSeq}` is the
 * id of the completed task's terminal event and `{completedFirstPosition}` and
 * `{completedLastPosition}` the positions of its first and last events on the multiplexed stream; `{token}` is a stream token of the caller (with keys on).
 */
export interface RecordedRequest {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** JSON-encoded unless a string, sent as `content-type: application/json` unless `headers` say otherwise. */
  body?: unknown;
  status: number;
  /** Who sends it with keys on: `alice` (an admin, the default), `bob`, no key, or a wrong one. */
  as?: 'alice' | 'bob' | 'none' | 'wrong';
  /** Only with keys on (or off); both when absent. */
  keys?: 'on' | 'off';
  /** The server it runs against (settings and setup: see the test); `main` when absent. */
  profile?: ProfileName;
  /** An event stream that does not end by itself: read this many frames, then hang up. */
  frames?: number;
}

export type ProfileName = 'main' | 'queueFull' | 'retainedFull' | 'streamsFull' | 'draining' | 'resync';

const SAMPLE = { type: 'sample', input: { steps: 1, step_ms: 0 } };
const TEXT = { 'content-type': 'text/plain' };

export const RECORDED_REQUESTS: RecordedRequest[] = [
  // Creating tasks
  { name: 'create', method: 'POST', path: '/api/tasks', body: SAMPLE, status: 201 },
  { name: 'create with labels and options', method: 'POST', path: '/api/tasks', body: { ...SAMPLE, labels: { team: 'a', 'app/tier': 'web' }, priority: 5, max_attempts: 2, timeout_ms: 60_000 }, status: 201 },
  { name: 'create with an Idempotency-Key', method: 'POST', path: '/api/tasks', headers: { 'content-type': 'application/json', 'idempotency-key': 'replay-1' }, body: SAMPLE, status: 201 },
  { name: 'the same create again: the same task', method: 'POST', path: '/api/tasks', headers: { 'content-type': 'application/json', 'idempotency-key': 'replay-1' }, body: SAMPLE, status: 200 },
  { name: 'the same key with another body', method: 'POST', path: '/api/tasks', headers: { 'content-type': 'application/json', 'idempotency-key': 'replay-1' }, body: { type: 'sample', input: { steps: 2 } }, status: 422 },
  { name: 'a bad Idempotency-Key', method: 'POST', path: '/api/tasks', headers: { 'content-type': 'application/json', 'idempotency-key': 'has space' }, body: SAMPLE, status: 400 },
  { name: 'malformed JSON', method: 'POST', path: '/api/tasks', body: '{"type":', status: 400 },
  { name: 'not JSON', method: 'POST', path: '/api/tasks', headers: TEXT, body: 'sample', status: 415 },
  { name: 'an unknown type', method: 'POST', path: '/api/tasks', body: { type: 'resize', input: {} }, status: 422 },
  { name: 'a bad input', method: 'POST', path: '/api/tasks', body: { type: 'sample', input: { steps: 0 } }, status: 422 },
  { name: 'a bad label key', method: 'POST', path: '/api/tasks', body: { ...SAMPLE, labels: { 'no spaces': 'x' } }, status: 422 },
  { name: 'too many labels', method: 'POST', path: '/api/tasks', body: { ...SAMPLE, labels: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) }, status: 422 },
  { name: 'a body over BODY_LIMIT_BYTES', method: 'POST', path: '/api/tasks', body: { type: 'sample', input: { pad: 'x'.repeat(1_100_000) } }, status: 413 },

  // Many creates at once
  { name: 'bulk create, one good item and one bad', method: 'POST', path: '/api/tasks/batch', body: { items: [SAMPLE, { type: 'sample', input: { steps: 0 } }] }, status: 200 },
  { name: 'bulk create with an atomic parameter', method: 'POST', path: '/api/tasks/batch?atomic=true', body: { items: [SAMPLE] }, status: 400 },
  { name: 'bulk create, not JSON', method: 'POST', path: '/api/tasks/batch', headers: TEXT, body: 'x', status: 415 },
  { name: 'bulk create with no items', method: 'POST', path: '/api/tasks/batch', body: { items: [] }, status: 422 },
  { name: 'bulk create over BODY_LIMIT_BYTES', method: 'POST', path: '/api/tasks/batch', body: { items: [{ type: 'sample', input: { pad: 'x'.repeat(1_100_000) } }] }, status: 413 },

  // Reading and listing
  { name: 'stats', method: 'GET', path: '/api/tasks/stats', status: 200 },
  { name: 'list', method: 'GET', path: '/api/tasks', status: 200 },
  { name: 'list filtered, a page at a time', method: 'GET', path: '/api/tasks?status=completed&type=sample&label=team:a&limit=1', status: 200 },
  { name: 'HEAD of the list', method: 'HEAD', path: '/api/tasks', status: 200 },
  { name: 'list with a bad limit', method: 'GET', path: '/api/tasks?limit=0', status: 400 },
  { name: 'read', method: 'GET', path: '/api/tasks/{completed}', status: 200 },
  { name: 'read a failed task', method: 'GET', path: '/api/tasks/{failed}', status: 200 },
  { name: 'read an unknown task', method: 'GET', path: '/api/tasks/{unknown}', status: 404 },
  { name: 'task types', method: 'GET', path: '/api/task-types', status: 200 },

  // Waiting
  { name: 'wait on an ended task', method: 'GET', path: '/api/tasks/{completed}/wait?timeout_ms=0', status: 200 },
  { name: 'wait on a running task, timing out', method: 'GET', path: '/api/tasks/{running}/wait?timeout_ms=0', status: 200 },
  { name: 'wait with a bad timeout', method: 'GET', path: '/api/tasks/{completed}/wait?timeout_ms=-1', status: 400 },
  { name: 'wait on an unknown task', method: 'GET', path: '/api/tasks/{unknown}/wait', status: 404 },

  // Cancel, retry, delete
  { name: 'cancel', method: 'POST', path: '/api/tasks/{fresh}/cancel', status: 202 },
  { name: 'cancel an ended task', method: 'POST', path: '/api/tasks/{completed}/cancel', status: 409 },
  { name: 'cancel an unknown task', method: 'POST', path: '/api/tasks/{unknown}/cancel', status: 404 },
  { name: 'retry a failed task', method: 'POST', path: '/api/tasks/{failed}/retry', status: 201 },
  { name: 'retry a completed task', method: 'POST', path: '/api/tasks/{completed}/retry', status: 409 },
  { name: 'retry an unknown task', method: 'POST', path: '/api/tasks/{unknown}/retry', status: 404 },
  { name: 'delete an ended task', method: 'DELETE', path: '/api/tasks/{freshCancelled}', status: 204 },
  { name: 'delete a queued task', method: 'DELETE', path: '/api/tasks/{fresh}', status: 409 },
  { name: 'delete an unknown task', method: 'DELETE', path: '/api/tasks/{unknown}', status: 404 },
  { name: 'clear cancelled tasks', method: 'DELETE', path: '/api/tasks?status=cancelled', status: 200 },
  { name: 'clear with no status', method: 'DELETE', path: '/api/tasks', status: 400 },

  // The queue and the reaper
  { name: 'pause', method: 'POST', path: '/api/queue/pause', status: 200 },
  { name: 'resume', method: 'POST', path: '/api/queue/resume', status: 200 },
  { name: 'pause, not an admin', method: 'POST', path: '/api/queue/pause', as: 'bob', keys: 'on', status: 403 },
  { name: 'resume, not an admin', method: 'POST', path: '/api/queue/resume', as: 'bob', keys: 'on', status: 403 },
  { name: 'reaper status', method: 'GET', path: '/api/reaper', status: 200 },
  { name: 'run the reaper', method: 'POST', path: '/api/reaper/run', status: 200 },
  { name: 'run the reaper, not an admin', method: 'POST', path: '/api/reaper/run', as: 'bob', keys: 'on', status: 403 },

  // A task's stream
  { name: 'stream an ended task to its end', method: 'GET', path: '/api/tasks/{completed}/events', status: 200 },
  { name: 'stream a failed task to its end', method: 'GET', path: '/api/tasks/{failed}/events', status: 200 },
  { name: 'stream a running task', method: 'GET', path: '/api/tasks/{running}/events', frames: 2, status: 200 },
  { name: 'resume after the terminal event', method: 'GET', path: '/api/tasks/{completed}/events', headers: { 'last-event-id': '{completedLastSeq}' }, status: 204 },
  { name: 'resume by query', method: 'GET', path: '/api/tasks/{completed}/events?last_event_id=1', status: 200 },
  { name: 'a bad Last-Event-ID', method: 'GET', path: '/api/tasks/{completed}/events', headers: { 'last-event-id': 'abc' }, status: 400 },
  { name: 'stream an unknown task', method: 'GET', path: '/api/tasks/{unknown}/events', status: 404 },
  { name: 'HEAD of a task stream', method: 'HEAD', path: '/api/tasks/{completed}/events', status: 405 },
  { name: 'stream with a stream token instead of a key', method: 'GET', path: '/api/tasks/{completed}/events?token={token}', as: 'none', keys: 'on', status: 200 },

  // The multiplexed stream
  { name: 'every task, resumed after a known position', method: 'GET', path: '/api/events?last_event_id={completedFirstPosition}', frames: 3, status: 200 },
  { name: 'chosen tasks to their end', method: 'GET', path: '/api/events?task_id={completed}&task_id={failed}', status: 200 },
  { name: 'chosen tasks already all delivered', method: 'GET', path: '/api/events?task_id={completed}&last_event_id={completedLastPosition}', status: 204 },
  { name: 'chosen tasks, none known', method: 'GET', path: '/api/events?task_id={unknown}', status: 404 },
  { name: 'a bad last_event_id', method: 'GET', path: '/api/events?last_event_id=x', status: 400 },
  { name: 'HEAD of the multiplexed stream', method: 'HEAD', path: '/api/events', status: 405 },
  { name: 'every task with a stream token', method: 'GET', path: '/api/events?token={token}', as: 'none', keys: 'on', frames: 0, status: 200 },
  { name: 'a stream token that is not valid', method: 'GET', path: '/api/events?token=st1.not-a-token', as: 'none', keys: 'on', status: 401 },
  { name: 'a stream token on another route', method: 'GET', path: '/api/tasks?token={token}', as: 'none', keys: 'on', status: 401 },
  { name: 'a wrong key', method: 'GET', path: '/api/tasks', as: 'wrong', keys: 'on', status: 401 },

  // Stream tokens
  { name: 'a stream token', method: 'POST', path: '/api/stream-tokens', status: 201 },
  { name: 'a stream token for chosen tasks', method: 'POST', path: '/api/stream-tokens', body: { task_ids: ['{completed}'] }, status: 201 },
  { name: 'a stream token for an unknown task', method: 'POST', path: '/api/stream-tokens', body: { task_ids: ['{unknown}'] }, status: 404 },
  { name: 'a stream token, malformed JSON', method: 'POST', path: '/api/stream-tokens', body: '{', status: 400 },
  { name: 'a stream token, not JSON', method: 'POST', path: '/api/stream-tokens', headers: TEXT, body: 'x', status: 415 },
  { name: 'a stream token, a bad body', method: 'POST', path: '/api/stream-tokens', body: { task_ids: [] }, status: 422 },
  { name: 'a stream token, too large a body', method: 'POST', path: '/api/stream-tokens', body: { task_ids: ['x'.repeat(20_000)] }, status: 413 },

  // Probes and metrics
  { name: 'liveness', method: 'GET', path: '/healthz', status: 200 },
  { name: 'readiness', method: 'GET', path: '/readyz', status: 200 },
  { name: 'metrics', method: 'GET', path: '/metrics', status: 200 },

  // Methods a path does not answer
  { name: 'PUT on the task list', method: 'PUT', path: '/api/tasks', status: 405 },
  { name: 'PATCH on a task', method: 'PATCH', path: '/api/tasks/{completed}', status: 405 },
  { name: 'GET on cancel', method: 'GET', path: '/api/tasks/{completed}/cancel', status: 405 },
  { name: 'POST on a stream', method: 'POST', path: '/api/events', status: 405 },
  { name: 'DELETE on a probe', method: 'DELETE', path: '/healthz', status: 405 },

  // Limits: each on a server set up to reach it
  { name: 'create with the queue full', profile: 'queueFull', method: 'POST', path: '/api/tasks', body: SAMPLE, status: 503 },
  { name: 'retry with the queue full', profile: 'queueFull', method: 'POST', path: '/api/tasks/{failed}/retry', status: 503 },
  { name: 'create with MAX_RETAINED_TASKS kept and none ended', profile: 'retainedFull', method: 'POST', path: '/api/tasks', body: SAMPLE, status: 503 },
  { name: 'a stream past MAX_STREAMS', profile: 'streamsFull', method: 'GET', path: '/api/events', status: 429 },
  { name: 'a task stream past MAX_STREAMS', profile: 'streamsFull', method: 'GET', path: '/api/tasks/{completed}/events', status: 429 },
  { name: 'a long poll past MAX_STREAMS', profile: 'streamsFull', method: 'GET', path: '/api/tasks/{completed}/wait', status: 429 },
  { name: 'create while shutting down', profile: 'draining', method: 'POST', path: '/api/tasks', body: SAMPLE, status: 503 },
  { name: 'retry while shutting down', profile: 'draining', method: 'POST', path: '/api/tasks/{failed}/retry', status: 503 },
  { name: 'a task stream while shutting down', profile: 'draining', method: 'GET', path: '/api/tasks/{failed}/events', status: 503 },
  { name: 'the multiplexed stream while shutting down', profile: 'draining', method: 'GET', path: '/api/events', status: 503 },
  { name: 'readiness while shutting down', profile: 'draining', method: 'GET', path: '/readyz', status: 503 },
  { name: 'a resume point no longer retained', profile: 'resync', method: 'GET', path: '/api/events?last_event_id=1', frames: 1, status: 200 },
];

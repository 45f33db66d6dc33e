/** One field that was wrong: a JSON Pointer (RFC 6901) into the request and what is wrong. */
export interface FieldError {
  pointer: string;
  detail: string;
}

/** Every error the service answers with, and its HTTP status. A new code cannot be forgotten. */
export const ERROR_STATUS = {
  invalid_request: 400,
  malformed_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  task_not_found: 404,
  method_not_allowed: 405,
  task_already_ended: 409,
  task_not_ended: 409,
  task_not_retryable: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  validation_failed: 422,
  idempotency_key_reused: 422,
  too_many_streams: 429,
  internal_error: 500,
  queue_full: 503,
  too_many_tasks: 503,
  shutting_down: 503,
  backend_unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface AppErrorOptions {
  errors?: FieldError[];
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  retryAfterSeconds?: number;
  /** The methods the path does answer (sent as Allow with a 405). */
  allow?: readonly string[];
  cause?: unknown;
}

/** An error meant for a client: a code, a safe message and, for bad input, the fields. */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: ErrorCode;
  readonly errors: FieldError[] | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly allow: readonly string[] | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.errors = options.errors;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.allow = options.allow;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export const errors = {
  taskNotFound: (taskId: string) =>
    new AppError('task_not_found', `No task with id ${taskId} (it may have been deleted or evicted)`),
  taskAlreadyEnded: (taskId: string, status: string) =>
    new AppError('task_already_ended', `Task ${taskId} has already ended (${status})`),
  taskNotRetryable: (taskId: string, status: string) =>
    new AppError('task_not_retryable', `Task ${taskId} is ${status}; only failed or cancelled tasks can be retried`),
  taskNotEnded: (taskId: string, status: string) =>
    new AppError('task_not_ended', `Task ${taskId} is still ${status}; cancel it first`),
  queueFull: (maxQueue: number) =>
    new AppError('queue_full', `The task queue is full (${maxQueue} waiting); try again later`, {
      retryAfterSeconds: 1,
    }),
  unsupportedMediaType: (contentType: string, cause?: unknown) =>
    new AppError('unsupported_media_type', 'Send the body as application/json', {
      cause,
      errors: [{ pointer: '/content-type', detail: `expected application/json, got ${JSON.stringify(contentType)}` }],
    }),
  methodNotAllowed: (method: string, allow: readonly string[]) =>
    new AppError('method_not_allowed', `This path does not answer ${method}; it answers ${allow.join(', ')}`, { allow }),
  unauthorized: (message: string) => new AppError('unauthorized', message),
  forbidden: (message: string) => new AppError('forbidden', message),
  tooManyStreams: (limit: number, scope: 'in all' | 'for this owner') =>
    new AppError('too_many_streams', `${limit} streams and long polls are already open ${scope}; close one or try again later`, {
      retryAfterSeconds: 5,
    }),
  /** `why`: which bound (MAX_RETAINED_TASKS or MAX_RETAINED_BYTES) leaves no room, in a clause. */
  tooManyTasks: (why: string) =>
    new AppError('too_many_tasks', `${why}; try again later`, {
      retryAfterSeconds: 5,
    }),
  idempotencyKeyReused: (taskId: string) =>
    new AppError('idempotency_key_reused', 'This Idempotency-Key was used with a different request body', {
      errors: [{ pointer: '/idempotency-key', detail: `already names task ${taskId}` }],
    }),
  /** A store, broker or executor backend (e.g. Redis) cannot be reached; the request may be retried. */
  backendUnavailable: (cause?: unknown) =>
    new AppError('backend_unavailable', 'The service cannot reach its backend; try again shortly', {
      retryAfterSeconds: 1,
      cause,
    }),
  shuttingDown: () =>
    new AppError('shutting_down', 'The service is shutting down', { retryAfterSeconds: 5 }),
  validation: (errors: FieldError[], message = 'The request is not valid') =>
    new AppError('validation_failed', message, { errors }),
} as const;

import type { Context } from 'hono';
import { z } from 'zod';
import type { AppError, ErrorCode, FieldError } from '../errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Record<ErrorCode, string> = {
  invalid_request: 'Invalid request',
  malformed_json: 'Malformed JSON',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  task_not_found: 'Task not found',
  method_not_allowed: 'Method not allowed',
  task_already_ended: 'Task already ended',
  task_not_ended: 'Task has not ended',
  task_not_retryable: 'Task cannot be retried',
  idempotency_key_reused: 'Idempotency key reused',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  validation_failed: 'Validation failed',
  internal_error: 'Internal error',
  queue_full: 'Queue full',
  too_many_streams: 'Too many streams',
  too_many_tasks: 'Too many tasks',
  shutting_down: 'Shutting down',
  backend_unavailable: 'Backend unavailable',
};

/** RFC 9457 problem details, with our `code` and, for bad input, the fields at fault. */
export const ProblemSchema = z
  .object({
    type: z.string().describe('A URI naming the kind of problem'),
    title: z.string(),
    status: z.int(),
    detail: z.string().describe('What went wrong, for a person'),
    instance: z.string().describe('The request path'),
    code: z.string().describe('Stable machine-readable code, snake_case'),
    errors: z
      .array(
        z.object({
          pointer: z.string().describe('JSON Pointer (RFC 6901) to the offending field'),
          detail: z.string(),
        }),
      )
      .optional(),
  })
  .meta({ id: 'Problem' });

/** Seconds to wait before retrying, for a 429 or 503 whose error names none. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5;

/**
 * An OpenAPI response entry for a problem answer. With `codes`, the schema says which `code`
 * values this answer carries, so a client can tell them apart.
 */
export const problemDoc = (description: string, codes?: readonly [ErrorCode, ...ErrorCode[]]) => ({
  description,
  content: {
    [PROBLEM_CONTENT_TYPE]: {
      schema: codes ? z.intersection(ProblemSchema, z.looseObject({ code: z.enum(codes) })) : ProblemSchema,
    },
  },
});

/**
 * A 429 or 503 entry: every such answer carries `Retry-After` (see problemResponse). A new
 * code for the same status (`backend_unavailable`, say) joins `codes` where it can be raised.
 */
export const retryLaterDoc = (description: string, codes: readonly [ErrorCode, ...ErrorCode[]]) => ({
  ...problemDoc(description, codes),
  headers: { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } },
});

/** Turns a zod issue path into a JSON Pointer (RFC 6901). */
export function toPointer(path: readonly PropertyKey[]): string {
  return path.map((part) => `/${String(part).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

export function fieldErrors(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldError[] {
  return error.issues.map((issue) => ({
    pointer: toPointer([...prefix, ...issue.path]),
    detail: issue.message,
  }));
}

export function problemResponse(c: Context, error: AppError): Response {
  const body = {
    type: `urn:taskstream:problem:${error.code}`,
    title: TITLES[error.code],
    status: error.status,
    detail: error.message,
    instance: c.req.path,
    code: error.code,
    ...(error.errors ? { errors: error.errors } : {}),
  };
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE };
  const retryAfter = error.retryAfterSeconds ?? (error.status === 429 || error.status === 503 ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  if (error.allow !== undefined) headers.allow = error.allow.join(', ');
  // RFC 9110: a 401 names the scheme that would be accepted.
  if (error.status === 401) headers['www-authenticate'] = 'Bearer realm="taskstream"';
  return new Response(JSON.stringify(body), { status: error.status, headers });
}

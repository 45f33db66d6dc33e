import type { Hook } from '@hono/zod-openapi';
import { AppError } from '../errors.ts';
import { fieldErrors } from '../http/problem.ts';

/**
 * Turns a failed zod validation into a problem: a bad body is 422 with pointers into the
 * body; a bad path, query or header is 400 with pointers naming the parameter.
 */
export const validationHook: Hook<unknown, any, any, void> = (result) => {
  if (result.success) return;
  const errors = fieldErrors(result.error);
  if (result.target === 'json') {
    throw new AppError('validation_failed', 'The request body is not valid', { errors });
  }
  throw new AppError('invalid_request', `The request ${result.target} is not valid`, { errors });
};

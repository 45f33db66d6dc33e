import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { AppError } from '../errors.ts';

/**
 * Refuses a request body over `maxBytes` with 413. A declared Content-Length is checked as
 * a number (Node's parser guarantees the body is exactly that long); only a chunked body is
 * counted as it streams. Hono's bodyLimit alone reads every body through a web stream,
 * which made @hono/node-server build a full Request per POST: nearly half of create's cost.
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  const tooLarge = () => new AppError('payload_too_large', `The request body is larger than ${maxBytes} bytes`);
  const streamed = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw tooLarge();
    },
  });
  return async (c, next) => {
    const declared = c.req.header('content-length');
    if (declared === undefined || c.req.header('transfer-encoding') !== undefined) return streamed(c, next);
    if (Number(declared) > maxBytes) throw tooLarge();
    return next();
  };
}

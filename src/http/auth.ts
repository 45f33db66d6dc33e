import type { HttpBindings } from '@hono/node-server';
import type { MiddlewareHandler } from 'hono';
import type { ApiKeyring } from '../auth/api-keys.ts';
import type { StreamScope, StreamTokens } from '../auth/stream-tokens.ts';
import { errors } from '../errors.ts';

/** Who is calling. */
export interface Caller {
  /** The owner of the API key (or of the stream token); undefined when authentication is off. */
  owner: string | undefined;
  /** Set when a stream token, not an API key, authenticated the request. */
  scope: StreamScope | undefined;
}

/** `basePath`: where the app is mounted (`/jobs`), `` at the root; see detectBasePath. */
export type AuthEnv = { Bindings: HttpBindings; Variables: { caller: Caller; basePath: string } };

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;
/** The only routes a stream token opens: the two event streams. */
const STREAM_ROUTE = /^\/api\/(?:events|tasks\/[^/]+\/events)$/;

const ANONYMOUS: Caller = { owner: undefined, scope: undefined };

/**
 * With API keys configured, every request needs `Authorization: Bearer <key>`, except
 * that a GET of an event stream may instead carry `?token=` (EventSource cannot send
 * headers). Without keys, everyone is the anonymous caller who sees every task.
 */
export function authenticate(keyring: ApiKeyring, tokens: StreamTokens): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    if (!keyring.enabled) {
      c.set('caller', ANONYMOUS);
      return next();
    }
    const header = c.req.header('authorization');
    if (header !== undefined) {
      const key = BEARER.exec(header)?.[1];
      const owner = key === undefined ? undefined : keyring.ownerOf(key);
      if (owner === undefined) throw errors.unauthorized('The API key is not valid: send Authorization: Bearer <key>');
      c.set('caller', { owner, scope: undefined });
      return next();
    }
    const token = c.req.query('token');
    if (token === undefined) throw errors.unauthorized('This API needs a key: send Authorization: Bearer <key>');
    if (c.req.method !== 'GET' || !STREAM_ROUTE.test(c.req.path.slice(c.get('basePath')?.length ?? 0))) {
      throw errors.unauthorized('A stream token only opens event streams: send Authorization: Bearer <key>');
    }
    const scope = tokens.verify(token);
    if (!scope) throw errors.unauthorized('The stream token is not valid or has expired: get a new one');
    c.set('caller', { owner: scope.owner, scope });
    return next();
  };
}

/** Throws unless the caller's stream token (if that is what it used) covers every one of `taskIds`. */
export function assertStreamScope(caller: Caller, taskIds: readonly string[] | undefined): void {
  const allowed = caller.scope?.taskIds;
  if (!allowed) return;
  if (taskIds === undefined || taskIds.some((taskId) => !allowed.includes(taskId))) {
    throw errors.unauthorized('This stream token does not cover these tasks');
  }
}

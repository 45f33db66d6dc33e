import type { MiddlewareHandler } from 'hono';
import { TrieRouter } from 'hono/router/trie-router';
import type { RouterRoute } from 'hono/types';
import { errors } from '../errors.ts';

/**
 * Refuses HEAD on a GET route. Hono answers HEAD by running the GET handler, and a route
 * written straight to the socket (an event stream) would then be answered twice.
 * Middleware sees HEAD before any handler runs. Paths it guards leave HEAD out of `Allow`.
 */
export const refuseHead: MiddlewareHandler = async (c, next) => {
  if (c.req.method === 'HEAD') throw errors.methodNotAllowed('HEAD', ['GET']);
  await next();
};

const NO_HEAD = Symbol('no HEAD');

/**
 * The methods each path answers, from an app's routes: `of(path)` is what a 405 lists in
 * `Allow` (RFC 9110 §15.5.6), or an empty list for a path no route matches (a 404). HEAD
 * comes with every GET route that `refuseHead` does not guard, as Hono answers it.
 */
export class AllowedMethods {
  readonly #router = new TrieRouter<string | typeof NO_HEAD>();

  constructor(routes: readonly RouterRoute[]) {
    for (const { method, path, handler } of routes) {
      // Middleware is mounted for every method (`ALL`): it answers nothing by itself.
      if (handler === refuseHead) this.#router.add('ALL', path, NO_HEAD);
      else if (method !== 'ALL') this.#router.add('ALL', path, method.toUpperCase());
    }
  }

  of(path: string): string[] {
    const [matches] = this.#router.match('GET', path);
    const found = new Set(matches.map(([value]) => value));
    if (found.has('GET') && !found.has(NO_HEAD)) found.add('HEAD');
    found.delete(NO_HEAD);
    return [...found].filter((method): method is string => typeof method === 'string').sort();
  }
}

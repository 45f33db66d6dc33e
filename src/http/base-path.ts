import type { MiddlewareHandler } from 'hono';

/**
 * `/jobs/` → `/jobs`; `` and `/` → `` (the root). The prefix every URL the app emits starts
 * with when it is mounted below the root.
 */
export function normalizeBasePath(path: string): string {
  const trimmed = path.trim().replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (!trimmed.startsWith('/') || /[?#\s]/.test(trimmed)) {
    throw new TypeError(`a base path starts with / and has no query, fragment or space, got ${JSON.stringify(path)}`);
  }
  return trimmed;
}

/** `joinPath('/jobs', '/api/tasks')` → `/jobs/api/tasks`. */
export const joinPath = (basePath: string, path: string) => `${basePath}${path}`;

export type BasePathEnv = { Variables: { basePath: string } };

/**
 * Finds where the app is mounted. Registered first and for every path (`*`), this
 * middleware's own route path is `*` prefixed by the mount point: `/jobs/*` once the app
 * is mounted with `parent.route('/jobs', app)`, `/*` at the root.
 */
export function detectBasePath(onMountPath?: (basePath: string) => void): MiddlewareHandler<BasePathEnv> {
  let last: string | undefined;
  return async (c, next) => {
    const basePath = c.req.routePath.replace(/\/?\*$/, '');
    c.set('basePath', basePath);
    if (basePath !== last) {
      last = basePath;
      onMountPath?.(basePath);
    }
    await next();
  };
}

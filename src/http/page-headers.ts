import type { MiddlewareHandler } from 'hono';

/** Everything a page loads comes from this origin; nothing inline may run. */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  // The pages name their mount path in <base>, so they work under any prefix.
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/** Headers for the static files of the dashboard and the API docs. */
export const pageHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status !== 200) return;
  c.header('x-content-type-options', 'nosniff');
  // The files change with the service: revalidate instead of running a stale script.
  c.header('cache-control', 'no-cache');
  if (c.res.headers.get('content-type')?.startsWith('text/html')) {
    c.header('content-security-policy', PAGE_CSP);
  }
};

import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { pageHeaders } from '../http/page-headers.ts';

// web/ sits at the project root and is not part of the build: from src/routes it is two
// levels up, from the compiled dist/src/routes three.
const webRoot = fileURLToPath(
  new URL(import.meta.url.includes('/dist/src/routes/') ? '../../../web/' : '../../web/', import.meta.url),
);

/** Only plain file names with a known extension: no directories, no dot files. */
const ASSET = '/:file{[a-z0-9][a-z0-9-]*\\.(?:js|css|svg)}';

/** The dashboard: static files from web/, served at `/`. */
export function dashboardRoutes() {
  const app = new Hono();
  app.get('/', pageHeaders, serveStatic({ root: webRoot, path: 'index.html' }));
  app.get(ASSET, pageHeaders, serveStatic({ root: webRoot }));
  return app;
}

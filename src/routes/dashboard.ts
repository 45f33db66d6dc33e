import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import type { BasePathEnv } from '../http/base-path.ts';
import { pageHeaders } from '../http/page-headers.ts';
import { pageHandler } from '../http/page.ts';

// web/ sits at the project root and is not part of the build: from src/routes it is two
// levels up, from the compiled dist/src/routes three.
const webRoot = fileURLToPath(
  new URL(import.meta.url.includes('/dist/src/routes/') ? '../../../web/' : '../../web/', import.meta.url),
);

/** Only plain file names with a known extension: no directories, no dot files. */
const ASSET = '/:file{[a-z0-9][a-z0-9-]*\\.(?:js|css|svg)}';

/** The dashboard: static files from web/, served at `/`. */
export function dashboardRoutes() {
  const app = new Hono<BasePathEnv>();
  app.get('/', pageHeaders, pageHandler(`${webRoot}index.html`));
  // The request path includes the mount path: the file is what follows it.
  app.get(ASSET, pageHeaders, serveStatic<BasePathEnv>({ root: webRoot, rewriteRequestPath: (path, c) => path.slice(c.get('basePath').length) }));
  return app;
}

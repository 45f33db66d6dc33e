import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import type { BasePathEnv } from '../http/base-path.ts';
import { pageHeaders } from '../http/page-headers.ts';
import { pageHandler } from '../http/page.ts';

// web/docs/ sits at the project root and is not part of the build: from src/routes it is two
// levels up, from the compiled dist/src/routes three.
const pageRoot = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../web/docs/' : '../../web/docs/', import.meta.url),
);

// Compiled, the files are in dist/swagger-ui/, copied there by the build: swagger-ui-dist is a
// development dependency only, so its install-time script (@scarf/scarf, which reports
// installs over the network) never runs for users. From source, they come from the package;
// resolving its package.json rather than the package: its main module loads the whole browser
// bundle into Node.
const swaggerUiRoot = import.meta.url.endsWith('.js')
  ? fileURLToPath(new URL('../../swagger-ui/', import.meta.url))
  : dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The files of swagger-ui-dist the page loads; nothing else of that package is served (scripts/build.mjs copies the same). */
const SWAGGER_UI_ASSETS = ['swagger-ui.css', 'swagger-ui-bundle.js', 'index.css', 'favicon-32x32.png'] as const;

/**
 * Swagger UI at `/docs`, rendering `/openapi.yaml`, from local files only (works offline).
 * It styles itself through the DOM, so the page's strict CSP needs no inline exception.
 */
export function docsRoutes() {
  const app = new Hono<BasePathEnv>();
  // '/docs/*' also matches '/docs'. Not '*': this app is mounted at the root, where that is every route.
  app.use('/docs/*', pageHeaders);
  app.get('/docs', pageHandler(`${pageRoot}index.html`, 'prefix'));
  app.get('/docs/', (c) => c.redirect(`${c.get('basePath')}/docs`, 301));
  app.get('/docs/init.js', serveStatic({ root: pageRoot, path: 'init.js' }));
  for (const file of SWAGGER_UI_ASSETS) {
    app.get(`/docs/${file}`, serveStatic({ root: swaggerUiRoot, path: file }));
  }
  return app;
}

import { OpenAPIHono } from '@hono/zod-openapi';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ApiKeyring } from './auth/api-keys.ts';
import type { StreamTokens } from './auth/stream-tokens.ts';
import { AppError, errors } from './errors.ts';
import { AllowedMethods } from './http/allowed-methods.ts';
import { OPENAPI_INFO, openApiDocument } from './openapi.ts';
import { authenticate, type AuthEnv } from './http/auth.ts';
import { detectBasePath } from './http/base-path.ts';
import { problemResponse } from './http/problem.ts';
import type { SseHub } from './http/sse.ts';
import { requestLogger } from './logging.ts';
import { toOpenApiYaml } from './openapi-yaml.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { docsRoutes } from './routes/docs.ts';
import { eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { queueRoutes } from './routes/queue.ts';
import { reaperRoutes } from './routes/reaper.ts';
import { streamTokenRoutes } from './routes/stream-tokens.ts';
import { taskBatchRoutes } from './routes/task-batch.ts';
import { taskTypeRoutes } from './routes/task-types.ts';
import { taskRoutes } from './routes/tasks.ts';
import { validationHook } from './routes/validation.ts';
import type { TaskService } from './service.ts';
import type { TaskRegistry } from './tasks/registry.ts';

export interface AppOptions {
  /** Told the mount path (`/jobs`, or `` at the root) when a request shows a new one. */
  onMountPath?: (basePath: string) => void;
  service: TaskService;
  registry: TaskRegistry;
  hub: SseHub;
  logger: Logger;
  metrics: Registry;
  isReady: () => boolean;
  /** Whether the backends answer: /readyz is 503 while they do not. */
  backendReachable?: () => boolean;
  maxTaskTimeoutMs: number;
  bodyLimitBytes: number;
  retentionMs: number;
  keyring: ApiKeyring;
  streamTokens: StreamTokens;
  /** Owners who may pause intake and run the reaper, with keys on. */
  adminOwners: readonly string[];
  /** Origins browsers may call the API from; `*` for any; none when empty. */
  corsOrigins: readonly string[];
}

// The document is built in openapi.ts; exported here too, for code that imports it with the app.
export { OPENAPI_INFO, openApiDocument };

/** The HTTP API: routes, and every error answered as application/problem+json. */
export function createApp(options: AppOptions) {
  const { service, registry, hub, logger, metrics, isReady, backendReachable, keyring, streamTokens, corsOrigins, adminOwners } =
    options;
  const { maxTaskTimeoutMs, bodyLimitBytes, retentionMs } = options;
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

  // First, so every handler and middleware below knows where the app is mounted.
  app.use(detectBasePath(options.onMountPath));
  app.use(requestLogger(logger));
  if (corsOrigins.length > 0) {
    app.use(
      '/api/*',
      cors({
        // Keys travel in Authorization, never in cookies, so no origin is ever sent credentials.
        origin: corsOrigins.includes('*') ? '*' : [...corsOrigins],
        credentials: false,
        allowMethods: ['GET', 'POST', 'DELETE'],
        allowHeaders: ['authorization', 'content-type', 'idempotency-key', 'last-event-id'],
        exposeHeaders: ['location', 'retry-after', 'x-request-id'],
        maxAge: 600,
      }),
    );
  }
  app.use('/api/*', authenticate(keyring, streamTokens));
  app.route(
    '/api',
    taskRoutes({
      service,
      registry,
      maxTaskTimeoutMs,
      bodyLimitBytes,
      hub,
      streamTokens: keyring.enabled ? streamTokens : undefined,
    }),
  );
  app.route('/api', taskTypeRoutes({ registry }));
  app.route('/api', queueRoutes({ service, adminOwners }));
  app.route('/api', reaperRoutes({ service, retentionMs, adminOwners }));
  app.route(
    '/api',
    taskBatchRoutes({
      service,
      registry,
      maxTaskTimeoutMs,
      bodyLimitBytes,
      streamTokens: keyring.enabled ? streamTokens : undefined,
    }),
  );
  app.route('/api', eventRoutes({ service, hub, streamTokens: keyring.enabled ? streamTokens : undefined }));
  app.route('/api', streamTokenRoutes({ service, tokens: streamTokens }));
  app.route('/', healthRoutes({ isReady, ...(backendReachable ? { backendReachable } : {}), metrics }));
  app.route('/', dashboardRoutes());
  app.route('/', docsRoutes());

  // Generated from the loaded task types on first use, so it describes the user's own ones.
  // Mounted below the root, the spec names the mount path as its server, so Try it out works.
  let document: ReturnType<typeof openApiDocument> | undefined;
  const yamlByBase = new Map<string, string>();
  app.get('/openapi.yaml', (c) => {
    const basePath = c.get('basePath');
    let yaml = yamlByBase.get(basePath);
    if (yaml === undefined) {
      document ??= openApiDocument(app);
      yaml = toOpenApiYaml(basePath === '' ? document : { ...document, servers: [{ url: basePath }] });
      yamlByBase.set(basePath, yaml);
    }
    return c.body(yaml, 200, { 'content-type': 'application/yaml; charset=utf-8' });
  });

  // Read on the first unmatched request: every route is registered by then.
  let allowed: AllowedMethods | undefined;
  app.notFound((c) => {
    allowed ??= new AllowedMethods(app.routes);
    const allow = allowed.of(c.req.path);
    // A GET route may also fall through here (a static file that is not there): that is a 404.
    if (allow.length > 0 && !allow.includes(c.req.method)) {
      return problemResponse(c, errors.methodNotAllowed(c.req.method, allow));
    }
    return problemResponse(c, new AppError('not_found', `No route for ${c.req.method} ${c.req.path}`));
  });

  app.onError((error, c) => {
    if (error instanceof AppError) return problemResponse(c, error);
    if (error instanceof HTTPException && error.status === 400) {
      // Hono's JSON validator throws this for a body that does not parse.
      return problemResponse(c, new AppError('malformed_json', 'The request body is not valid JSON', { cause: error }));
    }
    if (error instanceof HTTPException && error.status === 415) {
      // The OpenAPI validator's media-type gate: a body whose content type is not JSON.
      return problemResponse(c, errors.unsupportedMediaType(c.req.header('content-type') ?? '', error));
    }
    const incoming = c.env?.incoming;
    if (incoming?.destroyed && !incoming.complete) {
      // The client went away (or REQUEST_TIMEOUT_MS cut it) while sending its body: reading it
      // failed with "aborted". Not our error, and no one is left to answer.
      logger.info({ method: c.req.method, path: c.req.path }, 'request aborted by the client');
      return problemResponse(c, new AppError('invalid_request', 'The request body did not arrive in full', { cause: error }));
    }
    logger.error({ err: error, method: c.req.method, path: c.req.path }, 'unhandled error');
    return problemResponse(c, new AppError('internal_error', 'Something went wrong on our side', { cause: error }));
  });

  return app;
}

import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { builtInTaskModules } from '../workers/tasks/index.ts';
import { createApp } from './app.ts';
import { ApiKeyring } from './auth/api-keys.ts';
import { StreamTokens } from './auth/stream-tokens.ts';
import { createBackends } from './backends.ts';
import { ConfigError, type Config } from './config.ts';
import { SseHub } from './http/sse.ts';
import { logTaskTransitions } from './logging.ts';
import { createMetrics } from './metrics.ts';
import type { Clock } from './clock.ts';
import { TaskService } from './service.ts';
import { TaskRegistry } from './tasks/registry.ts';

// Worker code loads from source under tsx and vitest, and from the build when compiled.
const workerUrl = new URL(`../workers/entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Unsent bytes past which a stream's progress is coalesced, and past which it is dropped. */
const STREAM_COALESCE_ABOVE_BYTES = 1024 * 1024;
const STREAM_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export interface TaskstreamOptions {
  /** Task type modules; the built-in ones by default. */
  taskModules?: readonly URL[];
  logger?: Logger;
  clock?: Clock;
  /** See AppOptions.onMountPath. */
  onMountPath?: (basePath: string) => void;
}

export interface Taskstream {
  /** The base URL, e.g. http://127.0.0.1:3000 */
  readonly url: string;
  readonly service: TaskService;
  readonly registry: TaskRegistry;
  readonly app: ReturnType<typeof createApp>;
  readonly hub: SseHub;
  readonly server: ServerType;
  /**
   * Graceful stop: refuse new tasks and streams, let running tasks finish for `graceMs`,
   * cancel what is left (reason `shutdown`), let every stream send its terminal event,
   * then close. Idempotent.
   */
  shutdown(graceMs: number): Promise<void>;
  /** Immediate stop: ends open streams, stops the workers and the listener. Idempotent. */
  close(): Promise<void>;
}

/** The service and its HTTP app, built but not listening: see buildTaskstream. */
export interface TaskstreamCore {
  readonly config: Config;
  readonly service: TaskService;
  readonly registry: TaskRegistry;
  readonly app: ReturnType<typeof createApp>;
  readonly hub: SseHub;
  readonly logger: Logger;
  /**
   * Refuses new tasks and streams, lets running tasks finish for `graceMs`, cancels what is
   * left (reason `shutdown`), and ends every stream after its terminal event.
   */
  drain(graceMs: number): Promise<void>;
  /** Ends open streams and stops the workers. Idempotent. */
  close(): Promise<void>;
}

/**
 * Builds the service on the backends the configuration picks (see backends.ts) and its HTTP app,
 * without listening: the app can be served by startTaskstream or mounted in another app.
 * Task modules are all loaded before anything starts: a bad one throws a TaskModuleError.
 */
export async function buildTaskstream(config: Config, options: TaskstreamOptions = {}): Promise<TaskstreamCore> {
  const logger = options.logger ?? pino({ level: config.logLevel });
  const keyring = loadKeyring(config);
  const registry = await TaskRegistry.load(options.taskModules ?? builtInTaskModules);
  const backends = await createBackends(config, {
    workerUrl,
    taskModules: registry.moduleUrls,
    logger,
    clock: options.clock,
  });
  const service = new TaskService({
    ...backends,
    logger,
    taskTimeoutMs: config.taskTimeoutMs,
    retentionMs: config.retentionMs,
    maxRetainedTasks: config.maxRetainedTasks,
    maxRetainedBytes: config.maxRetainedBytes,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const hub = new SseHub({
    heartbeatMs: config.heartbeatMs,
    retryMs: config.sseRetryMs,
    coalesceAboveBytes: STREAM_COALESCE_ABOVE_BYTES,
    maxBufferedBytes: STREAM_MAX_BUFFERED_BYTES,
    maxStreams: config.maxStreams,
    maxStreamsPerOwner: config.maxStreamsPerOwner,
  });
  logTaskTransitions(service, logger);
  const metrics = createMetrics(service, hub);
  const app = createApp({
    service,
    registry,
    hub,
    logger,
    metrics,
    isReady: () => !service.draining,
    backendReachable: backends.reachable,
    maxTaskTimeoutMs: config.maxTaskTimeoutMs,
    bodyLimitBytes: config.bodyLimitBytes,
    retentionMs: config.retentionMs,
    keyring,
    streamTokens: new StreamTokens({ secret: config.streamTokenSecret, ttlMs: config.streamTokenTtlMs }),
    corsOrigins: config.corsOrigins,
    ...(options.onMountPath ? { onMountPath: options.onMountPath } : {}),
    adminOwners: config.adminOwners,
  });


  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      hub.close();
      await service.close();
    })());
  const drain = async (graceMs: number) => {
    await service.drain(graceMs);
    // Every task has ended, so every task stream has written its terminal event and
    // ended itself; what is left is ended here.
    hub.endAll();
  };
  return { config, service, registry, app, hub, logger, drain, close };
}

/** Builds the service (see buildTaskstream) and listens on `config.host`:`config.port`. */
export async function startTaskstream(config: Config, options: TaskstreamOptions = {}): Promise<Taskstream> {
  const core = await buildTaskstream(config, options);
  const { service, registry, app, hub, logger } = core;
  const server = await new Promise<ServerType>((resolve, reject) => {
    const listening = serve(
      {
        fetch: app.fetch,
        port: config.port,
        hostname: config.host,
        // Slow or half-open requests are cut; these bound receiving a request, not the
        // response, so a long-lived event stream is never timed out.
        serverOptions: {
          headersTimeout: config.headersTimeoutMs,
          requestTimeout: config.requestTimeoutMs,
          // Node checks those every 30 s by default: check often enough to honour short ones.
          connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
        },
      },
      () => resolve(listening),
    );
    listening.once('error', reject);
  }).catch(async (error: unknown) => {
    // Nothing is left half-started: a port in use also stops the workers.
    await core.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      const why = code === 'EADDRINUSE' ? 'is already in use' : 'may not be used by this user';
      throw new ConfigError(`PORT=${config.port} (HOST=${config.host}): the address ${why}`);
    }
    throw error;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const mode = config.redisUrl === undefined ? { mode: 'embedded' } : { mode: 'redis', redisPrefix: config.redisPrefix };
  logger.info({ url: `http://${host}:${address.port}`, maxWorkers: config.maxWorkers, ...mode }, 'listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await core.close();
      await closeServer(server, 0);
    })());

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (graceMs: number) =>
    (shuttingDown ??= (async () => {
      const started = performance.now();
      logger.info({ graceMs }, 'shutting down');
      await core.drain(graceMs);
      // Ended responses are flushed before sockets close.
      await closeServer(server, SOCKET_FLUSH_MS);
      await close();
      logger.info({ durationMs: Math.round(performance.now() - started) }, 'shut down');
    })());

  return { url: `http://${host}:${address.port}`, service, registry, app, hub, server, shutdown, close };
}

/** The API keys of API_KEYS and API_KEYS_FILE; none (authentication off) when both are empty. */
function loadKeyring(config: Config): ApiKeyring {
  const sources = [{ text: config.apiKeys, source: 'API_KEYS' }];
  if (config.apiKeysFile !== '') {
    let text: string;
    try {
      text = readFileSync(config.apiKeysFile, 'utf8');
    } catch (error) {
      throw new ConfigError(`API_KEYS_FILE=${JSON.stringify(config.apiKeysFile)}: ${(error as Error).message}`);
    }
    sources.push({ text, source: `API_KEYS_FILE (${config.apiKeysFile})` });
  }
  return ApiKeyring.parse(sources);
}

/** How long ended responses get to flush before their sockets are cut. */
const SOCKET_FLUSH_MS = 2000;

/**
 * Stops listening. Sockets close as soon as they are idle (their last response flushed);
 * any still busy after `flushMs` are cut.
 */
function closeServer(server: ServerType, flushMs: number): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise<void>((resolve) => {
    if (!('closeAllConnections' in server)) {
      server.close(() => resolve());
      return;
    }
    const sweep = setInterval(() => server.closeIdleConnections(), 20);
    const cut = setTimeout(() => server.closeAllConnections(), flushMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(cut);
      resolve();
    });
    if (flushMs === 0) server.closeAllConnections();
    else server.closeIdleConnections();
  });
}

import { z } from 'zod';

const WHOLE_NUMBER = { error: 'expected a whole number' };
const integer = (min: number, max: number = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number(WHOLE_NUMBER).int(WHOLE_NUMBER).min(min).max(max);
/** Node timers cannot wait longer than 2^31 - 1 ms (about 24.8 days). */
const duration = (min: number) => integer(min, 2_147_483_647);

/** Every environment variable the service reads, with its default. Durations are in ms. */
export const EnvSchema = z.object({
  PORT: integer(0, 65_535).default(3000).describe('TCP port to listen on'),
  HOST: z.string().min(1).default('127.0.0.1').describe('Address to bind'),
  MAX_WORKERS: integer(1, 1024).default(4).describe('Worker threads, so tasks running at once'),
  MAX_QUEUE: integer(0).default(1000).describe('Tasks waiting for a worker before create answers 503'),
  TASK_TIMEOUT_MS: duration(1).default(300_000).describe('Default run time limit, counted from the start'),
  MAX_TASK_TIMEOUT_MS: duration(1).default(3_600_000).describe('Largest `timeout_ms` a request may ask for'),
  CANCEL_GRACE_MS: duration(0).default(5000).describe('Time a cancelled or timed-out task gets to stop before its thread is terminated'),
  SHUTDOWN_GRACE_MS: duration(0).default(10_000).describe('On SIGTERM or SIGINT, time running tasks get to finish before they are cancelled'),
  RETENTION_MS: duration(0).default(600_000).describe('How long an ended task stays readable'),
  HEARTBEAT_MS: duration(1).default(15_000).describe('Interval of SSE heartbeat comments'),
  SSE_RETRY_MS: duration(0).default(3000).describe('Reconnect delay hinted to SSE clients'),
  BODY_LIMIT_BYTES: integer(1).default(1_048_576).describe('Largest request body'),
  EVENT_HISTORY: integer(1).default(10_000).describe('Events of all tasks kept for resuming the multiplexed stream'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Least severe log level written'),
  PROGRESS_HISTORY: integer(1).default(100).describe('Progress events per task kept for replay; lifecycle events are always kept'),
  API_KEYS: z
    .string()
    .default('')
    .describe('Comma-separated `owner:key` pairs; when set, every /api route needs `Authorization: Bearer <key>`'),
  API_KEYS_FILE: z.string().default('').describe('A file of `owner:key` pairs, one per line, read at start (with or instead of API_KEYS)'),
  ADMIN_OWNERS: z
    .string()
    .default('')
    .describe('Comma-separated owners allowed to pause and resume the queue and run the reaper (with API_KEYS)'),
  STREAM_TOKEN_SECRET: z
    .string()
    .refine((secret) => secret === '' || secret.length >= 32, 'must be at least 32 characters')
    .default('')
    .describe('Signs stream tokens; random at each start when empty (tokens then end with the process)'),
  STREAM_TOKEN_TTL_MS: duration(1).optional().describe('Lifetime of a stream token; RETENTION_MS when unset'),
  CORS_ORIGINS: z
    .string()
    .default('')
    .describe('Comma-separated origins that browsers may call the API from, or `*` for any; none when empty'),
  MAX_STREAMS: integer(1)
    .default(10_000)
    .describe('Open SSE streams and long polls (`/wait`) in all; past it a new one gets 429'),
  MAX_STREAMS_PER_OWNER: integer(1)
    .default(1000)
    .describe('Open SSE streams and long polls per API key owner (with API_KEYS); past it 429'),
  MAX_RETAINED_TASKS: integer(1).default(100_000).describe('Tasks kept in all; past it the oldest ended tasks are evicted early, and create answers 503 if none has ended'),
  MAX_RETAINED_BYTES: integer(1)
    .default(268_435_456)
    .describe('Bytes of inputs, results, errors and replayed events kept in all (JSON); past it the oldest ended tasks are evicted early, and create answers 503 if the new task does not fit and none has ended'),
  HEADERS_TIMEOUT_MS: duration(1).default(10_000).describe('Time a client gets to send its request headers'),
  REQUEST_TIMEOUT_MS: duration(1).default(30_000).describe('Time a client gets to send a whole request; open streams are not cut'),
  TASK_MODULES: z
    .string()
    .default('')
    .describe('Comma-separated task modules (files, or directories of .js, .mjs and .ts files, relative to the working directory) to run instead of the built-in types'),
  WORKER_MAX_HEAP_MB: integer(16, 1_048_576)
    .optional()
    .describe("Heap limit of each worker thread in MiB; a task past it fails with worker_crashed. V8's default when unset"),
  REDIS_URL: z
    .string()
    .refine(isRedisUrl, 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379, with an optional database number (redis://127.0.0.1:6379/0)')
    .default('')
    .describe('Redis mode: every instance with the same REDIS_URL and REDIS_PREFIX is one service; in-memory, one process, when empty'),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+$/, 'must be letters, digits and _ . : - only')
    .default('taskstream')
    .describe('Prefix of every Redis key, so several services can share one Redis'),
  WORKER_LOST_AFTER_MS: duration(3000)
    .default(30_000)
    .describe('With REDIS_URL: time within which a task whose instance died is noticed by another instance, then retried or failed with `worker_lost`'),
});

/** A URL ioredis can connect to; empty means "no Redis". */
function isRedisUrl(value: string): boolean {
  if (value === '') return true;
  try {
    const url = new URL(value);
    // The path, if any, is the database number: /0, /1, …
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && /^(\/\d*)?$/.test(url.pathname);
  } catch {
    return false;
  }
}

/** A comma-separated list, without blanks. */
const list = (value: string) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

export const ConfigSchema = EnvSchema.refine(
  (env) => env.TASK_TIMEOUT_MS <= env.MAX_TASK_TIMEOUT_MS,
  { path: ['TASK_TIMEOUT_MS'], message: 'must not exceed MAX_TASK_TIMEOUT_MS' },
)
  .refine((env) => env.HEADERS_TIMEOUT_MS <= env.REQUEST_TIMEOUT_MS, {
    path: ['HEADERS_TIMEOUT_MS'],
    message: 'must not exceed REQUEST_TIMEOUT_MS',
  })
  .refine((env) => env.MAX_RETAINED_BYTES >= 4 * env.BODY_LIMIT_BYTES, {
    path: ['MAX_RETAINED_BYTES'],
    message: 'must be at least 4 × BODY_LIMIT_BYTES, so that the largest task fits beside the all-tasks log',
  })
  .transform((env) => ({
    port: env.PORT,
    host: env.HOST,
    maxWorkers: env.MAX_WORKERS,
    maxQueue: env.MAX_QUEUE,
    taskTimeoutMs: env.TASK_TIMEOUT_MS,
    maxTaskTimeoutMs: env.MAX_TASK_TIMEOUT_MS,
    cancelGraceMs: env.CANCEL_GRACE_MS,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    retentionMs: env.RETENTION_MS,
    heartbeatMs: env.HEARTBEAT_MS,
    sseRetryMs: env.SSE_RETRY_MS,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    progressHistory: env.PROGRESS_HISTORY,
    logLevel: env.LOG_LEVEL,
    eventHistory: env.EVENT_HISTORY,
    apiKeys: env.API_KEYS,
    apiKeysFile: env.API_KEYS_FILE,
    adminOwners: list(env.ADMIN_OWNERS),
    streamTokenSecret: env.STREAM_TOKEN_SECRET,
    streamTokenTtlMs: env.STREAM_TOKEN_TTL_MS ?? env.RETENTION_MS,
    corsOrigins: list(env.CORS_ORIGINS),
    maxStreams: env.MAX_STREAMS,
    maxStreamsPerOwner: env.MAX_STREAMS_PER_OWNER,
    maxRetainedTasks: env.MAX_RETAINED_TASKS,
    maxRetainedBytes: env.MAX_RETAINED_BYTES,
    headersTimeoutMs: env.HEADERS_TIMEOUT_MS,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    taskModules: list(env.TASK_MODULES),
    workerMaxHeapMb: env.WORKER_MAX_HEAP_MB,
    redisUrl: env.REDIS_URL === '' ? undefined : env.REDIS_URL,
    redisPrefix: env.REDIS_PREFIX,
    workerLostAfterMs: env.WORKER_LOST_AFTER_MS,
  }));

export type Config = z.output<typeof ConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment once; a bad value throws a ConfigError naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty or blank variable means "use the default", as in most shells' `VAR= cmd`;
  // left as is, Number(' ') would silently read as 0.
  const relevant = Object.fromEntries(
    Object.keys(EnvSchema.shape).map((key) => [key, env[key]?.trim() ? env[key] : undefined]),
  );
  const parsed = ConfigSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}

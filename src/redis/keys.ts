/**
 * Every Redis key of one service, under its prefix (REDIS_PREFIX). All instances with the
 * same Redis and prefix are one service; several services can share one Redis.
 *
 * Per task: `task:{id}` (its record, a hash of JSON-encoded fields) and `events:{id}` (its
 * event stream, entry id `{seq}-0`). Service-wide: `tasks` and `status:{status}` and
 * `owner:{owner}` (ids, sorted by creation), `counts` and `counts:{owner}` (tasks per
 * status), `expiry` (ended tasks by eviction time), `idem:{owner}:{key}` (idempotency keys,
 * gone with their task), `creating:{id}` (a task_created on its way, for a few seconds) and
 * `events` (the multiplexed stream, entry id `{position}-0`).
 */
export class RedisKeys {
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  task(taskId: string): string {
    return `${this.prefix}:task:${taskId}`;
  }

  taskEvents(taskId: string): string {
    return `${this.prefix}:events:${taskId}`;
  }

  creating(taskId: string): string {
    return `${this.prefix}:creating:${taskId}`;
  }

  get allEvents(): string {
    return `${this.prefix}:events`;
  }

  idempotency(owner: string | null, key: string): string {
    return `${this.prefix}:idem:${owner ?? ''}:${key}`;
  }

  /** A pattern matching every key of this service (for SCAN). */
  get pattern(): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;
  }
}

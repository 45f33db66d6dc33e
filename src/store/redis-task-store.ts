import type { Redis } from 'ioredis';
import { isTerminal, type CancelReason, type TaskStatus } from '../events.ts';
import { call } from '../redis/connection.ts';
import { RedisKeys } from '../redis/keys.ts';
import { TaskRecordSchema } from '../task-record.ts';
import { CREATE, DELETE, REQUEST_CANCEL, TRANSITION } from './redis-task-scripts.ts';
import type {
  CancelRequestOutcome,
  CreateOutcome,
  IdempotencyClaim,
  TaskChanges,
  TaskQuery,
  TaskRecord,
  TaskStore,
  TransitionOptions,
  TransitionOutcome,
} from './task-store.ts';

export interface RedisTaskStoreOptions {
  /** A command connection (see createRedisConnection). */
  redis: Redis;
  prefix: string;
  /** Close the connection in close(); otherwise it is the caller's. */
  ownConnection?: boolean;
}

/** The scripts, defined once per connection as commands (EVALSHA, falling back to EVAL). */
interface StoreCommands {
  taskstreamCreate(...args: string[]): Promise<[1] | [2, string[]] | [3, string]>;
  taskstreamTransition(...args: string[]): Promise<[] | [0 | 1, string[]] | [2, string[], CancelReason]>;
  taskstreamRequestCancel(...args: string[]): Promise<[] | [0, string[]] | [1, string[], CancelReason]>;
  taskstreamDelete(...args: string[]): Promise<string[]>;
}

const SCRIPTS = {
  taskstreamCreate: CREATE,
  taskstreamTransition: TRANSITION,
  taskstreamRequestCancel: REQUEST_CANCEL,
  taskstreamDelete: DELETE,
} as const;

/**
 * Inputs of tasks kept here so a transition need not send them back (they never change):
 * at most this many, and this many bytes (an input may be as large as a request body).
 */
const INPUT_CACHE_SIZE = 10_000;
const INPUT_CACHE_BYTES = 32 * 1024 * 1024;

/** Ids read per round trip while listing with filters. */
const LIST_BATCH = 200;

const RECORD_FIELDS = Object.keys(TaskRecordSchema.shape);

const emptyCounts = (): Record<TaskStatus, number> => ({ queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });

/**
 * Task records in Redis, shared by every instance with the same prefix. A record is a hash
 * of JSON-encoded fields; the indexes (by creation, status and owner), the counts and the
 * expiry index of ended tasks change in the same Lua script as the status, so every
 * decision about a task is one atomic step on the server.
 */
export class RedisTaskStore implements TaskStore {
  readonly #redis: Redis & StoreCommands;
  readonly #keys: RedisKeys;
  readonly #ownConnection: boolean;
  /** Task id → its input as stored (JSON), for the tasks this instance touched last. */
  readonly #inputs = new Map<string, string>();
  /** UTF-16 code units in #inputs: twice the bytes V8 may use for them, at most. */
  #inputChars = 0;

  constructor({ redis, prefix, ownConnection = false }: RedisTaskStoreOptions) {
    this.#ownConnection = ownConnection;
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    this.#redis = redis as Redis & StoreCommands;
    this.#keys = new RedisKeys(prefix);
  }

  async create(record: TaskRecord, idempotency?: IdempotencyClaim): Promise<CreateOutcome> {
    const reply = await call(
      this.#redis.taskstreamCreate(
        this.#keys.prefix,
        record.task_id,
        record.status,
        JSON.stringify(record.owner),
        idempotency ? this.#keys.idempotency(record.owner, idempotency.key) : '',
        idempotency?.fingerprint ?? '',
        isTerminal(record.status) ? expiryScore(record.expires_at) : '',
        ...encode(record),
      ),
    );
    if (reply[0] === 1) {
      this.#remember(record.task_id, JSON.stringify(record.input));
      return { kind: 'created', record };
    }
    if (reply[0] === 2) return { kind: 'existing', record: decodePairs(reply[1])! };
    return { kind: 'key_reused', taskId: reply[1] };
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const hash = await call(this.#redis.hgetall(this.#keys.task(taskId)));
    if (hash.input !== undefined) this.#remember(taskId, hash.input);
    return decodeHash(hash);
  }

  async transition(taskId: string, from: readonly TaskStatus[], changes: TaskChanges, options?: TransitionOptions): Promise<TransitionOutcome> {
    const ends = changes.status !== undefined && isTerminal(changes.status);
    const input = this.#inputs.get(taskId);
    const reply = await call(
      this.#redis.taskstreamTransition(
        this.#keys.prefix,
        taskId,
        from.join(','),
        changes.status ?? '',
        ends ? expiryScore(changes.expires_at ?? null) : '',
        input === undefined ? '0' : '1',
        options?.unlessCancelRequested ? '1' : '0',
        ...encode(changes),
      ),
    );
    if (reply.length === 0) {
      this.#forget(taskId);
      return { applied: false, record: undefined };
    }
    const pairs = reply[1];
    if (input === undefined) this.#remember(taskId, pairs[pairs.indexOf('input') + 1]!);
    else pairs.push('input', input);
    const before = decodePairs(pairs)!;
    if (reply[0] === 0) return { applied: false, record: before };
    if (reply[0] === 2) return { applied: false, record: before, cancelRequested: reply[2] };
    if (changes.input !== undefined) this.#remember(taskId, JSON.stringify(changes.input));
    // The script applied exactly these changes to exactly this record.
    const record = Object.fromEntries(
      RECORD_FIELDS.map((field) => {
        const changed = changes[field as keyof TaskChanges];
        return [field, changed !== undefined ? changed : before[field as keyof TaskRecord]];
      }),
    ) as TaskRecord;
    return { applied: true, record, previous: before };
  }

  async requestCancel(taskId: string, reason: CancelReason): Promise<CancelRequestOutcome> {
    const reply = await call(this.#redis.taskstreamRequestCancel(this.#keys.prefix, taskId, reason));
    if (reply.length === 0) return { accepted: false, record: undefined };
    const record = decodePairs(reply[1])!;
    return reply[0] === 1 ? { accepted: true, record, reason: reply[2] } : { accepted: false, record };
  }

  async delete(taskId: string): Promise<TaskRecord | undefined> {
    this.#forget(taskId);
    return decodePairs(await call(this.#redis.taskstreamDelete(this.#keys.prefix, taskId)));
  }

  async list({ status, type, labels, owner, limit, before }: TaskQuery): Promise<{ tasks: TaskRecord[]; hasMore: boolean }> {
    // Walk the narrowest index that holds every match; filter the rest here.
    const index =
      status !== undefined
        ? `${this.#keys.prefix}:status:${status}`
        : owner !== undefined
          ? `${this.#keys.prefix}:owner:${owner}`
          : `${this.#keys.prefix}:tasks`;
    const wanted = labels ? Object.entries(labels) : [];
    const tasks: TaskRecord[] = [];
    let from = before === undefined ? '+' : `(${before}`;
    for (;;) {
      const batch = Math.min(Math.max(limit + 1 - tasks.length, 1), LIST_BATCH);
      const ids = await call(this.#redis.zrevrangebylex(index, from, '-', 'LIMIT', 0, batch));
      if (ids.length === 0) return { tasks, hasMore: false };
      const pipeline = this.#redis.pipeline();
      for (const id of ids) pipeline.hgetall(this.#keys.task(id));
      for (const [error, hash] of (await call(pipeline.exec())) ?? []) {
        if (error) throw error;
        // Deleted since the index was read, or changed status: skip it.
        const record = decodeHash(hash as Record<string, string>);
        if (!record) continue;
        if (status !== undefined && record.status !== status) continue;
        if (type !== undefined && record.type !== type) continue;
        if (owner !== undefined && record.owner !== owner) continue;
        if (wanted.some(([key, value]) => record.labels[key] !== value)) continue;
        if (tasks.length === limit) return { tasks, hasMore: true };
        tasks.push(record);
      }
      if (ids.length < batch) return { tasks, hasMore: false };
      from = `(${ids[ids.length - 1]}`;
    }
  }

  async counts(owner?: string): Promise<Record<TaskStatus, number>> {
    const key = owner === undefined ? `${this.#keys.prefix}:counts` : `${this.#keys.prefix}:counts:${owner}`;
    const hash = await call(this.#redis.hgetall(key));
    const counts = emptyCounts();
    for (const status of Object.keys(counts) as TaskStatus[]) counts[status] = Number(hash[status] ?? 0);
    return counts;
  }

  size(): Promise<number> {
    return call(this.#redis.zcard(`${this.#keys.prefix}:tasks`));
  }

  /** The total the scripts keep in `{prefix}:bytes`, over every instance's records. */
  async retainedBytes(): Promise<number> {
    return Number((await call(this.#redis.hget(`${this.#keys.prefix}:bytes`, 'records'))) ?? 0);
  }

  expired(now: number, limit: number): Promise<string[]> {
    return call(this.#redis.zrangebyscore(`${this.#keys.prefix}:expiry`, '-inf', now, 'LIMIT', 0, limit));
  }

  async oldestEnded(): Promise<string | undefined> {
    const [first] = await call(this.#redis.zrange(`${this.#keys.prefix}:expiry`, '0', '0'));
    return first;
  }

  #remember(taskId: string, input: string): void {
    this.#forget(taskId);
    this.#inputs.set(taskId, input);
    this.#inputChars += input.length;
    while (this.#inputs.size > INPUT_CACHE_SIZE || this.#inputChars * 2 > INPUT_CACHE_BYTES) {
      this.#forget(this.#inputs.keys().next().value!);
    }
  }

  #forget(taskId: string): void {
    const input = this.#inputs.get(taskId);
    if (input === undefined) return;
    this.#inputs.delete(taskId);
    this.#inputChars -= input.length;
  }

  async close(): Promise<void> {
    this.#inputs.clear();
    this.#inputChars = 0;
    if (this.#ownConnection && this.#redis.status !== 'end') {
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    }
  }
}

/** An ended task's place on the expiry index: its expires_at in epoch ms (never, if null). */
const expiryScore = (expiresAt: string | null): string => (expiresAt === null ? '+inf' : String(Date.parse(expiresAt)));

/** A record (or changes) as hash field/value pairs, each value JSON. */
function encode(changes: Partial<TaskRecord>): string[] {
  const pairs: string[] = [];
  for (const [field, value] of Object.entries(changes)) {
    if (value !== undefined) pairs.push(field, JSON.stringify(value));
  }
  return pairs;
}

function decodeHash(hash: Record<string, string>): TaskRecord | undefined {
  if (hash.task_id === undefined) return undefined;
  // Fields in the schema's order, so a snapshot reads the same as in memory mode.
  const record: Record<string, unknown> = {};
  for (const field of RECORD_FIELDS) {
    const value = hash[field];
    if (value !== undefined) record[field] = JSON.parse(value);
  }
  return record as TaskRecord;
}

function decodePairs(pairs: string[]): TaskRecord | undefined {
  const hash: Record<string, string> = {};
  for (let i = 0; i < pairs.length; i += 2) hash[pairs[i]!] = pairs[i + 1]!;
  return decodeHash(hash);
}

import { isTerminal, type CancelReason, type TaskStatus } from '../events.ts';
import { jsonBytes, recordBytes, SIZED_FIELDS } from '../retained-bytes.ts';
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

/**
 * Task records in a Map. Insertion order is creation order, since ids are UUIDv7. Every
 * operation runs to completion before it returns, so each is atomic; the promises only
 * carry values already computed.
 */
export class MemoryTaskStore implements TaskStore {
  readonly #records = new Map<string, TaskRecord>();
  /** Kept in step with every create, status change and delete: in all, and per owner. */
  readonly #counts = emptyCounts();
  readonly #ownerCounts = new Map<string, Record<TaskStatus, number>>();
  /** Scoped key → the task it names, and back. A key lives as long as its task. */
  readonly #keys = new Map<string, { taskId: string; fingerprint: string }>();
  readonly #keyOf = new Map<string, string>();
  /** Ended tasks → expiry (epoch ms), in expiry order. */
  #ended = new Map<string, number>();
  #lastExpiry = -Infinity;
  /** Each record's recordBytes(), and their sum: kept in step with every create, change and delete. */
  readonly #sizes = new Map<string, number>();
  #bytes = 0;
  /** Tasks a cancel was requested for → the first request's reason. */
  readonly #cancelRequests = new Map<string, CancelReason>();

  create(record: TaskRecord, idempotency?: IdempotencyClaim): Promise<CreateOutcome> {
    if (idempotency !== undefined) {
      const scoped = scopedKey(record.owner, idempotency.key);
      const earlier = this.#keys.get(scoped);
      const existing = earlier && this.#records.get(earlier.taskId);
      if (earlier && existing) {
        return Promise.resolve(
          earlier.fingerprint === idempotency.fingerprint
            ? { kind: 'existing', record: existing }
            : { kind: 'key_reused', taskId: earlier.taskId },
        );
      }
      this.#keys.set(scoped, { taskId: record.task_id, fingerprint: idempotency.fingerprint });
      this.#keyOf.set(record.task_id, scoped);
    }
    this.#records.set(record.task_id, record);
    this.#count(record, 1);
    this.#resize(record.task_id, recordBytes(record));
    if (isTerminal(record.status)) this.#markEnded(record);
    return Promise.resolve({ kind: 'created', record });
  }

  get(taskId: string): Promise<TaskRecord | undefined> {
    return Promise.resolve(this.#records.get(taskId));
  }

  transition(taskId: string, from: readonly TaskStatus[], changes: TaskChanges, options?: TransitionOptions): Promise<TransitionOutcome> {
    const previous = this.#records.get(taskId);
    if (!previous || !from.includes(previous.status)) return Promise.resolve({ applied: false, record: previous });
    const cancelRequested = options?.unlessCancelRequested ? this.#cancelRequests.get(taskId) : undefined;
    if (cancelRequested !== undefined) return Promise.resolve({ applied: false, record: previous, cancelRequested });
    const record: TaskRecord = { ...previous, ...changes };
    this.#records.set(taskId, record);
    // Only the sized fields that changed are measured again (a result, an error): never the input.
    let bytes = this.#sizes.get(taskId) ?? 0;
    for (const field of SIZED_FIELDS) {
      if (field in changes && changes[field] !== previous[field]) bytes += jsonBytes(record[field]) - jsonBytes(previous[field]);
    }
    this.#resize(taskId, bytes);
    if (record.status !== previous.status) {
      this.#count(previous, -1);
      this.#count(record, 1);
      if (isTerminal(record.status)) this.#markEnded(record);
      else this.#ended.delete(taskId);
    }
    return Promise.resolve({ applied: true, record, previous });
  }

  requestCancel(taskId: string, reason: CancelReason): Promise<CancelRequestOutcome> {
    const record = this.#records.get(taskId);
    if (!record || isTerminal(record.status)) return Promise.resolve({ accepted: false, record });
    let standing = this.#cancelRequests.get(taskId);
    if (standing === undefined) this.#cancelRequests.set(taskId, (standing = reason));
    return Promise.resolve({ accepted: true, record, reason: standing });
  }

  delete(taskId: string): Promise<TaskRecord | undefined> {
    const record = this.#records.get(taskId);
    if (!record) return Promise.resolve(undefined);
    this.#records.delete(taskId);
    this.#cancelRequests.delete(taskId);
    this.#count(record, -1);
    this.#bytes -= this.#sizes.get(taskId) ?? 0;
    this.#sizes.delete(taskId);
    this.#ended.delete(taskId);
    const key = this.#keyOf.get(taskId);
    if (key !== undefined) {
      this.#keyOf.delete(taskId);
      this.#keys.delete(key);
    }
    return Promise.resolve(record);
  }

  list({ status, type, labels, owner, limit, before }: TaskQuery): Promise<{ tasks: TaskRecord[]; hasMore: boolean }> {
    const all = [...this.#records.values()];
    const wanted = labels ? Object.entries(labels) : [];
    const tasks: TaskRecord[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const record = all[i]!;
      if (before !== undefined && record.task_id >= before) continue;
      if (status !== undefined && record.status !== status) continue;
      if (type !== undefined && record.type !== type) continue;
      if (owner !== undefined && record.owner !== owner) continue;
      if (wanted.some(([key, value]) => record.labels[key] !== value)) continue;
      if (tasks.length === limit) return Promise.resolve({ tasks, hasMore: true });
      tasks.push(record);
    }
    return Promise.resolve({ tasks, hasMore: false });
  }

  counts(owner?: string): Promise<Record<TaskStatus, number>> {
    if (owner === undefined) return Promise.resolve({ ...this.#counts });
    return Promise.resolve({ ...(this.#ownerCounts.get(owner) ?? emptyCounts()) });
  }

  size(): Promise<number> {
    return Promise.resolve(this.#records.size);
  }

  retainedBytes(): Promise<number> {
    return Promise.resolve(this.#bytes);
  }

  expired(now: number, limit: number): Promise<string[]> {
    const due: string[] = [];
    for (const [taskId, expiresAt] of this.#ended) {
      if (expiresAt > now || due.length === limit) break;
      due.push(taskId);
    }
    return Promise.resolve(due);
  }

  oldestEnded(): Promise<string | undefined> {
    return Promise.resolve(this.#ended.keys().next().value);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #markEnded(record: TaskRecord): void {
    const expiresAt = record.expires_at === null ? Infinity : Date.parse(record.expires_at);
    this.#ended.delete(record.task_id);
    this.#ended.set(record.task_id, expiresAt);
    if (expiresAt >= this.#lastExpiry) {
      this.#lastExpiry = expiresAt;
      return;
    }
    // Out of order (a clock stepped back): rare, so re-sort rather than index.
    this.#ended = new Map([...this.#ended].sort(([, a], [, b]) => a - b));
  }

  #resize(taskId: string, bytes: number): void {
    this.#bytes += bytes - (this.#sizes.get(taskId) ?? 0);
    this.#sizes.set(taskId, bytes);
  }

  #count(record: TaskRecord, delta: 1 | -1): void {
    this.#counts[record.status] += delta;
    if (record.owner === null) return;
    let counts = this.#ownerCounts.get(record.owner);
    if (!counts) this.#ownerCounts.set(record.owner, (counts = emptyCounts()));
    counts[record.status] += delta;
  }
}

/** Keys are per owner: one owner can neither collide with nor probe another's. */
const scopedKey = (owner: string | null, key: string) => `${owner ?? ''}\u0000${key}`;

const emptyCounts = (): Record<TaskStatus, number> => ({ queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });

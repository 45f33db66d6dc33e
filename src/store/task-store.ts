import type { CancelReason, TaskStatus } from '../events.ts';
import type { TaskRecord } from '../task-record.ts';

export type { TaskRecord };

export interface TaskQuery {
  status?: TaskStatus | undefined;
  type?: string | undefined;
  /** Every one of these labels must match. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Only this owner's tasks; every task when undefined. */
  owner?: string | undefined;
  limit: number;
  /** Only tasks older than this one (ids sort by creation). */
  before?: string | undefined;
}

/** An Idempotency-Key claimed by a create request. */
export interface IdempotencyClaim {
  /** The key as the client sent it. The store scopes it by the record's owner. */
  key: string;
  /** fingerprint() of the request body: the same key with another body is refused. */
  fingerprint: string;
}

/** What create() did. */
export type CreateOutcome =
  /** The record was stored (and the key, if any, now names it). */
  | { kind: 'created'; record: TaskRecord }
  /** The owner's key already names a task created with the same body: that task, as it is now. */
  | { kind: 'existing'; record: TaskRecord }
  /** The owner's key already names a task created with another body; nothing was stored. */
  | { kind: 'key_reused'; taskId: string };

/** What a record may change into: everything but its identity. */
export type TaskChanges = Partial<Omit<TaskRecord, 'task_id' | 'owner' | 'created_at'>>;

/** What transition() did. */
export type TransitionOutcome =
  | { applied: true; record: TaskRecord; previous: TaskRecord }
  /**
   * The status was not one of `from` (record: the task as it is), or the task is gone
   * (undefined), or, with `unlessCancelRequested`, a cancel was requested (`cancelRequested`:
   * its reason).
   */
  | { applied: false; record: TaskRecord | undefined; cancelRequested?: CancelReason };

export interface TransitionOptions {
  /** Refuse the change if a cancel was requested (requestCancel()) and the status allowed it. */
  unlessCancelRequested?: boolean;
}

/** What requestCancel() did. */
export type CancelRequestOutcome =
  /** The task had not ended: it is marked, by this request or an earlier one whose reason stands. */
  | { accepted: true; record: TaskRecord; reason: CancelReason }
  /** The task had already ended (record: as it is), or is gone (undefined): nothing was marked. */
  | { accepted: false; record: TaskRecord | undefined };

/**
 * Holds task records: the one source of truth about a task's status. Every method that
 * decides something about a task is one atomic operation here, never "read, decide, write"
 * across two calls, so two processes sharing a store cannot both win a race (two creates
 * with one Idempotency-Key, a cancel and a completion, two reapers).
 *
 * Records handed out are snapshots: callers never mutate them, and a later change is a new
 * object. Implementations: MemoryTaskStore. Network implementations reject with AppError
 * `backend_unavailable` when the backend cannot be reached.
 */
export interface TaskStore {
  /**
   * Stores a new record, unless `idempotency` names a key its owner already used: then
   * nothing is stored and the outcome names the earlier task (`existing` with the same body,
   * `key_reused` with another). Keys are per owner (null is an owner too): one owner's key
   * never collides with another's. A key lives as long as its task: delete() frees it.
   */
  create(record: TaskRecord, idempotency?: IdempotencyClaim): Promise<CreateOutcome>;

  get(taskId: string): Promise<TaskRecord | undefined>;

  /**
   * Applies `changes` only if the task's status is one of `from`, as one atomic step, and
   * returns the record before and after. This is the lifecycle's compare-and-set: "start it
   * only if queued", "end it unless already ended", "record progress only while running".
   * Changing `status` moves the task between counts() and between list() filters at once.
   * Ending a task (a terminal `status` with `expires_at`) makes it visible to expired()
   * and oldestEnded().
   */
  transition(taskId: string, from: readonly TaskStatus[], changes: TaskChanges, options?: TransitionOptions): Promise<TransitionOutcome>;

  /**
   * Marks a task that has not ended as cancelled by request, as one atomic step with the
   * status check: a transition asked with `unlessCancelRequested` is refused from then on,
   * on every process sharing the store. So a cancel accepted anywhere decides the task's end
   * even when another process is applying an end of its own at the same moment. The first
   * request's reason stands; the mark goes with the task.
   */
  requestCancel(taskId: string, reason: CancelReason): Promise<CancelRequestOutcome>;

  /**
   * Removes a task and frees its Idempotency-Key; returns the removed record, or undefined
   * if it was already gone. Of two concurrent deletes of one task exactly one gets the record.
   */
  delete(taskId: string): Promise<TaskRecord | undefined>;

  /** Newest first (ids sort by creation); `hasMore` says whether another page follows. */
  list(query: TaskQuery): Promise<{ tasks: TaskRecord[]; hasMore: boolean }>;

  /** How many tasks are in each status: of one owner, or of everyone when undefined. */
  counts(owner?: string): Promise<Record<TaskStatus, number>>;

  /** How many tasks are held, in any status. */
  size(): Promise<number>;

  /**
   * Bytes of the records held (recordBytes(): input, result and error as JSON), kept as a
   * running total by create, transition and delete, never by a rescan. With a shared
   * store, the total of every process's records.
   */
  retainedBytes(): Promise<number>;

  /** Up to `limit` ended tasks whose expires_at is at or before `now` (epoch ms), soonest expiry first. */
  expired(now: number, limit: number): Promise<string[]>;

  /** The ended task that expires first (evicted early to make room), or undefined if none has ended. */
  oldestEnded(): Promise<string | undefined>;

  /** Releases connections. Idempotent; the records outlive it only in a network store. */
  close(): Promise<void>;
}

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import type { Broker, GlobalSubscription, LoggedEvent, Subscriber, Subscription } from './broker/broker.ts';
import { AppError, errors } from './errors.ts';
import { EtaEstimator } from './eta.ts';
import {
  isTerminal,
  RETRYABLE_ERRORS,
  type CancelReason,
  type EventData,
  type EventType,
  type NewTaskEvent,
  type Progress,
  type TaskError,
  type TaskStatus,
} from './events.ts';
import { fingerprint, IdempotencyKeys } from './idempotency.ts';
import { retryDelayMs } from './retry.ts';
import type { ExecutionOutcome, Executor } from './executor/executor.ts';
import type { ProgressReport } from './executor/executor.ts';
import { Reaper, systemClock, type Clock } from './reaper.ts';
import type { TaskRecord, TaskStore } from './store/task-store.ts';
import { toSnapshot } from './task-record.ts';

export interface TaskServiceOptions {
  store: TaskStore;
  broker: Broker;
  executor: Executor;
  logger: Logger;
  taskTimeoutMs: number;
  retentionMs: number;
  /** Tasks kept at most; past it the oldest ended ones are evicted early. */
  maxRetainedTasks?: number;
  clock?: Clock;
}

/** A create request, as validated at the edge. */
export interface CreateTaskInput {
  type: string;
  input: unknown;
  timeout_ms?: number | undefined;
  priority?: number | undefined;
  max_attempts?: number | undefined;
  retry_backoff_ms?: number | undefined;
  labels?: Record<string, string> | undefined;
}

export interface ListTasksInput {
  status?: TaskStatus | undefined;
  type?: string | undefined;
  labels?: Record<string, string> | undefined;
  owner?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export const DEFAULT_RETRY_BACKOFF_MS = 1000;

const encodeCursor = (taskId: string) => Buffer.from(taskId).toString('base64url');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function decodeCursor(cursor: string): string {
  const taskId = Buffer.from(cursor, 'base64url').toString();
  if (!UUID.test(taskId)) {
    throw new AppError('invalid_request', 'The cursor is not one this service returned', {
      errors: [{ pointer: '/cursor', detail: 'Use the next_cursor of a previous page' }],
    });
  }
  return taskId;
}

export interface TaskServiceEventMap {
  /** A task changed status (queued when created); the record is the new one. */
  transition: [record: TaskRecord];
  /** An event was published on a task's stream. */
  published: [eventType: EventType];
}

/**
 * The task lifecycle: queued → running → completed | failed | cancelled, with exactly one
 * terminal event per task, always its last. Routes call this; it drives the store, the
 * broker, the executor and the reaper, and tells observers (logs, metrics) what happened.
 */
export class TaskService extends EventEmitter<TaskServiceEventMap> {
  readonly #store: TaskStore;
  readonly #broker: Broker;
  readonly #executor: Executor;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #reaper: Reaper;
  readonly #taskTimeoutMs: number;
  readonly #retentionMs: number;
  readonly #maxRetainedTasks: number;
  /** Set by drain(): no new tasks or streams; existing ones run to their end. */
  #draining = false;
  #closing = false;
  /** Tasks not yet ended. drain() waits for this to reach zero. */
  #active = 0;
  #idleWaiters: (() => void)[] = [];
  /** Failed attempts waiting out their backoff before the next attempt is queued. */
  readonly #retryTimers = new Map<string, { timer: unknown; error: TaskError }>();
  /**
   * Cancels accepted while an attempt runs, by task. A cancel answered 202 wins whatever
   * else was already stopping the attempt (its timeout, a shutdown): the attempt's outcome,
   * when it comes, is replaced by `cancelled`, and the task is never retried.
   */
  readonly #cancelling = new Map<string, CancelReason>();
  /** Callers of waitForEnd(), by task. */
  readonly #endWaiters = new Map<string, Set<(record: TaskRecord | undefined) => void>>();
  readonly #idempotencyKeys = new IdempotencyKeys();
  readonly #eta = new EtaEstimator();

  constructor(options: TaskServiceOptions) {
    super();
    this.#store = options.store;
    this.#broker = options.broker;
    this.#executor = options.executor;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#taskTimeoutMs = options.taskTimeoutMs;
    this.#retentionMs = options.retentionMs;
    this.#maxRetainedTasks = options.maxRetainedTasks ?? Number.MAX_SAFE_INTEGER;
    this.#reaper = new Reaper({ evict: (taskId) => this.#evict(taskId, 'evicted'), clock: this.#clock });
    this.#executor.on('started', (taskId) => this.#onStarted(taskId));
    this.#executor.on('progress', (taskId, progress) => this.#onProgress(taskId, progress));
    this.#executor.on('finished', (taskId, outcome) => this.#onFinished(taskId, outcome));
  }

  /**
   * Creates a task for `owner` and queues it; its input was validated against its type's
   * schema. With an idempotency key the owner already used for the same body, returns that
   * task instead (`created: false`); with a different body, throws `idempotency_key_reused`.
   */
  create(
    request: CreateTaskInput,
    {
      idempotencyKey,
      retryOf = null,
      owner,
    }: { idempotencyKey?: string | undefined; retryOf?: string | null; owner?: string | undefined } = {},
  ): { record: TaskRecord; created: boolean } {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    // Keys are per owner: one owner can neither collide with nor probe another's.
    const scopedKey = idempotencyKey === undefined ? undefined : `${owner ?? ''}\u0000${idempotencyKey}`;
    const bodyFingerprint = scopedKey === undefined ? '' : fingerprint(request);
    if (scopedKey !== undefined) {
      const existing = this.#idempotencyKeys.find(scopedKey, bodyFingerprint);
      const record = existing === undefined ? undefined : this.#store.get(existing);
      if (record) return { record, created: false };
    }
    if (this.#store.size >= this.#maxRetainedTasks && !this.#reaper.evictOldest()) {
      throw errors.tooManyTasks(this.#maxRetainedTasks);
    }
    const record: TaskRecord = {
      task_id: uuidv7(),
      type: request.type,
      status: 'queued',
      input: request.input,
      progress: { value: null, text: null, step: null, total_steps: null, eta_ms: null },
      result: null,
      error: null,
      created_at: this.#isoNow(),
      started_at: null,
      finished_at: null,
      expires_at: null,
      timeout_ms: request.timeout_ms ?? this.#taskTimeoutMs,
      priority: request.priority ?? 0,
      attempt: 0,
      max_attempts: request.max_attempts ?? 1,
      retry_backoff_ms: request.retry_backoff_ms ?? DEFAULT_RETRY_BACKOFF_MS,
      labels: request.labels ?? {},
      retry_of: retryOf,
      owner: owner ?? null,
    };
    this.#store.insert(record);
    try {
      this.#submit(record, false);
    } catch (error) {
      // Nothing was published yet: the task never existed for anyone.
      this.#store.delete(record.task_id);
      throw error;
    }
    if (scopedKey !== undefined) this.#idempotencyKeys.remember(scopedKey, bodyFingerprint, record.task_id);
    this.#active++;
    this.#broker.publish({
      event_type: 'task_created',
      task_id: record.task_id,
      timestamp: record.created_at,
      data: { task: toSnapshot(record) },
    }, record.owner);
    this.emit('transition', record);
    return { record, created: true };
  }

  /** Starts a new task with a failed or cancelled task's type, input and options. */
  retry(taskId: string, owner?: string): TaskRecord {
    const old = this.get(taskId, owner);
    if (old.status !== 'failed' && old.status !== 'cancelled') throw errors.taskNotRetryable(taskId, old.status);
    const { type, input, timeout_ms, priority, max_attempts, retry_backoff_ms, labels } = old;
    return this.create(
      { type, input, timeout_ms, priority, max_attempts, retry_backoff_ms, labels },
      { retryOf: taskId, owner: old.owner ?? undefined },
    ).record;
  }

  /**
   * The task, if `owner` may see it: with an owner, another owner's task is "not found",
   * so its existence is never confirmed. Without one (no authentication), every task.
   */
  get(taskId: string, owner?: string): TaskRecord {
    const record = this.#store.get(taskId);
    if (!record || (owner !== undefined && record.owner !== owner)) throw errors.taskNotFound(taskId);
    return record;
  }

  list({ status, type, labels, owner, limit, cursor }: ListTasksInput): { tasks: TaskRecord[]; next_cursor: string | null } {
    const before = cursor === undefined ? undefined : decodeCursor(cursor);
    const { tasks, hasMore } = this.#store.list({ status, type, labels, owner, limit, before });
    const last = tasks[tasks.length - 1];
    return { tasks, next_cursor: hasMore && last ? encodeCursor(last.task_id) : null };
  }

  /** Cancels a queued or running task. A queued one ends at once; a running one shortly. */
  cancel(taskId: string, owner?: string): TaskRecord {
    const record = this.get(taskId, owner);
    if (isTerminal(record.status)) throw errors.taskAlreadyEnded(taskId, record.status);
    this.#cancel(taskId, 'requested');
    return this.get(taskId);
  }

  /** Deletes an ended task and ends its open streams. */
  remove(taskId: string, owner?: string): void {
    const record = this.get(taskId, owner);
    if (!isTerminal(record.status)) throw errors.taskNotEnded(taskId, record.status);
    this.#evict(taskId, 'deleted');
  }

  /** Deletes every task (of `owner`, if given) that ended with `status`; returns how many. */
  clear(status: 'completed' | 'failed' | 'cancelled', owner?: string): number {
    const { tasks } = this.#store.list({ status, owner, limit: Number.MAX_SAFE_INTEGER });
    for (const task of tasks) this.#evict(task.task_id, 'deleted');
    return tasks.length;
  }

  /**
   * Resolves with the task once it has ended, or as it is after `timeoutMs`, or when
   * `signal` aborts (the client went away). Resolves undefined if the task is removed.
   */
  waitForEnd(taskId: string, timeoutMs: number, signal?: AbortSignal, owner?: string): Promise<TaskRecord | undefined> {
    const record = this.get(taskId, owner);
    if (isTerminal(record.status)) return Promise.resolve(record);
    return new Promise((resolve) => {
      let waiters = this.#endWaiters.get(taskId);
      if (!waiters) this.#endWaiters.set(taskId, (waiters = new Set()));
      const done = (ended: TaskRecord | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        waiters.delete(done);
        if (waiters.size === 0 && this.#endWaiters.get(taskId) === waiters) this.#endWaiters.delete(taskId);
        resolve(ended);
      };
      const onAbort = () => done(this.#store.get(taskId));
      const timer = setTimeout(onAbort, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(done);
    });
  }

  /** Stops starting queued tasks (new ones are still accepted); running ones go on. */
  pause(): void {
    this.#executor.pause();
  }

  resume(): void {
    this.#executor.resume();
  }

  get reaperStatus() {
    return this.#reaper.status;
  }

  /**
   * Opens a stream on a task: the retained events after `afterSeq`, then live ones. The
   * record is read in the same tick as the subscription, so the two agree.
   */
  subscribe(
    taskId: string,
    afterSeq: number,
    subscriber: Subscriber,
    owner?: string,
  ): { record: TaskRecord; subscription: Subscription } {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    const record = this.get(taskId, owner);
    return { record, subscription: this.#broker.subscribe(taskId, { seq: afterSeq }, subscriber) };
  }

  /**
   * Opens one stream on several tasks: their retained events after the service-wide
   * `afterPosition`, merged in publish order, then live ones. Unknown ids (and other
   * owners' tasks) are skipped; if none is left, the first one is reported as not found.
   */
  subscribeMany(
    taskIds: readonly string[],
    afterPosition: number,
    subscriber: Subscriber,
    owner?: string,
  ): { records: TaskRecord[]; subscription: Subscription } {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    const records = [...new Set(taskIds)]
      .map((taskId) => this.#store.get(taskId))
      .filter((record): record is TaskRecord => record !== undefined && (owner === undefined || record.owner === owner));
    if (records.length === 0) throw errors.taskNotFound(taskIds[0] ?? '');
    const subscriptions = records.map((record) =>
      this.#broker.subscribe(record.task_id, { position: afterPosition }, subscriber),
    );
    const history: LoggedEvent[] = subscriptions.flatMap((subscription) => subscription.history);
    history.sort((a, b) => a.position - b.position);
    return {
      records,
      subscription: {
        history,
        newest: Math.max(...subscriptions.map((subscription) => subscription.newest)),
        unsubscribe: () => subscriptions.forEach((subscription) => subscription.unsubscribe()),
      },
    };
  }

  /**
   * Opens a stream on every task (of `owner`, if given): history after `afterPosition` if
   * given, then live events.
   */
  subscribeAll(afterPosition: number | undefined, subscriber: Subscriber, owner?: string): GlobalSubscription {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    if (owner === undefined) return this.#broker.subscribeAll(afterPosition, subscriber);
    const own = (logged: LoggedEvent) => logged.owner === owner;
    const subscription = this.#broker.subscribeAll(afterPosition, {
      deliver: (logged) => own(logged) && subscriber.deliver(logged),
      removed: (logged) => own(logged) && subscriber.removed(logged),
    });
    return { ...subscription, history: subscription.history.filter(own) };
  }

  /** Tasks per status: of one owner, or of everyone. */
  taskCounts(owner?: string) {
    return this.#store.counts(owner);
  }

  get stats() {
    return {
      tasks: this.#store.size,
      byStatus: this.#store.counts(),
      streams: this.#broker.subscriberCount,
      ...this.#executor.stats,
    };
  }

  /** True once drain() has begun: the service is going away. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Stops taking tasks and streams, cancels queued tasks, gives running ones `graceMs` to
   * finish, then cancels them (reason `shutdown`) and waits until every task has ended, so
   * every stream has had its terminal event.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    for (const taskId of this.#activeTaskIds('queued')) this.#cancel(taskId, 'shutdown');
    if (await this.#whenIdle(graceMs)) return;
    for (const taskId of this.#activeTaskIds('running')) this.#cancel(taskId, 'shutdown');
    // Cancellation ends every task within the cancel grace period (the thread is terminated).
    await this.#whenIdle(Infinity);
  }

  /** Evicts every ended task whose retention is over; returns how many. */
  reap(): number {
    return this.#reaper.sweep();
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#draining = true;
    this.#reaper.close();
    for (const { timer } of this.#retryTimers.values()) this.#clock.clearTimeout(timer);
    this.#retryTimers.clear();
    await this.#executor.close();
    this.#broker.close();
  }

  #submit(record: TaskRecord, force: boolean): void {
    const { task_id: taskId, type, input, timeout_ms: timeoutMs, priority } = record;
    this.#executor.submit({ taskId, type, input, timeoutMs, priority }, { force });
  }

  /** Cancels a queued, running or retry-waiting task. */
  #cancel(taskId: string, reason: CancelReason): void {
    const waiting = this.#retryTimers.get(taskId);
    if (waiting) {
      // Between attempts: nothing runs, so the task ends here and now.
      this.#clock.clearTimeout(waiting.timer);
      this.#retryTimers.delete(taskId);
      this.#onFinished(taskId, { status: 'cancelled', reason });
      return;
    }
    // The first cancel decides the reason; a later one (a shutdown after a request) adds nothing.
    if (!this.#cancelling.has(taskId)) this.#cancelling.set(taskId, reason);
    this.#executor.cancel(taskId, reason);
  }

  #onStarted(taskId: string): void {
    const current = this.#store.get(taskId);
    if (!current) return;
    const previous = current.attempt > 0 ? current.error : null;
    const record = this.#store.update(taskId, {
      status: 'running',
      started_at: current.started_at ?? this.#isoNow(),
      attempt: current.attempt + 1,
      error: null,
      // Progress is the current attempt's: a failed attempt's value and estimate are stale.
      progress: { value: null, text: null, step: null, total_steps: null, eta_ms: null },
    })!;
    this.#eta.reset(taskId);
    this.#publishEvent(taskId, 'task_started', {
      attempt: record.attempt,
      max_attempts: record.max_attempts,
      ...(previous ? { previous_error: previous } : {}),
    });
    this.emit('transition', record);
  }

  #onProgress(taskId: string, report: ProgressReport): void {
    const record = this.#store.get(taskId);
    if (record?.status !== 'running') return;
    const progress: Progress = { ...report, eta_ms: this.#eta.estimate(taskId, report.value, this.#clock.now()) };
    this.#store.update(taskId, { progress });
    this.#publishEvent(taskId, 'progress_update', progress);
  }

  #onFinished(taskId: string, outcome: ExecutionOutcome): void {
    const cancelledAs = this.#cancelling.get(taskId);
    this.#cancelling.delete(taskId);
    const record = this.#store.get(taskId);
    if (!record || isTerminal(record.status)) return;
    if (cancelledAs !== undefined) outcome = { status: 'cancelled', reason: cancelledAs };
    this.#eta.reset(taskId);
    if (outcome.status === 'failed' && this.#shouldRetry(record, outcome.error)) {
      this.#scheduleRetry(record, outcome.error);
      return;
    }
    const finishedAt = this.#clock.now();
    const expiresAt = finishedAt + this.#retentionMs;
    this.#active--;
    const ended = {
      status: outcome.status,
      finished_at: new Date(finishedAt).toISOString(),
      expires_at: new Date(expiresAt).toISOString(),
    };
    let final: TaskRecord;
    if (outcome.status === 'completed') {
      final = this.#store.update(taskId, { ...ended, result: outcome.result, error: null })!;
      this.#publishEvent(taskId, 'task_completed', { result: outcome.result });
    } else if (outcome.status === 'failed') {
      final = this.#store.update(taskId, { ...ended, error: outcome.error })!;
      this.#publishEvent(taskId, 'task_failed', { error: outcome.error });
    } else {
      // A cancel between attempts leaves the failed attempt's error behind: not this end's.
      final = this.#store.update(taskId, { ...ended, error: null })!;
      this.#publishEvent(taskId, 'task_cancelled', { reason: outcome.reason });
    }
    this.#reaper.schedule(taskId, expiresAt);
    this.emit('transition', final);
    this.#wakeEndWaiters(taskId, final);
    if (this.#active === 0) this.#wakeIdleWaiters();
  }

  #shouldRetry(record: TaskRecord, error: TaskError): boolean {
    return RETRYABLE_ERRORS.has(error.code) && record.attempt < record.max_attempts && !this.#draining;
  }

  /** The attempt failed but another is allowed: back to queued after the backoff. */
  #scheduleRetry(record: TaskRecord, error: TaskError): void {
    const taskId = record.task_id;
    const delay = retryDelayMs(record.retry_backoff_ms, record.attempt + 1);
    const queued = this.#store.update(taskId, { status: 'queued', error })!;
    const timer = this.#clock.setTimeout(() => {
      this.#retryTimers.delete(taskId);
      const current = this.#store.get(taskId);
      if (current?.status === 'queued') this.#submit(current, true);
    }, delay);
    this.#retryTimers.set(taskId, { timer, error });
    this.#logger.debug({ taskId, attempt: record.attempt, delayMs: delay, errorCode: error.code }, 'retry scheduled');
    this.emit('transition', queued);
  }

  #wakeEndWaiters(taskId: string, record: TaskRecord | undefined): void {
    const waiters = this.#endWaiters.get(taskId);
    if (!waiters) return;
    this.#endWaiters.delete(taskId);
    for (const wake of [...waiters]) wake(record);
  }

  #publishEvent<T extends EventType>(taskId: string, event_type: T, data: EventData<T>): void {
    const owner = this.#store.get(taskId)?.owner ?? null;
    this.#broker.publish({ event_type, task_id: taskId, timestamp: this.#isoNow(), data } as NewTaskEvent, owner);
    this.emit('published', event_type);
  }

  #activeTaskIds(status: 'queued' | 'running'): string[] {
    return this.#store.list({ status, limit: Number.MAX_SAFE_INTEGER }).tasks.map((task) => task.task_id);
  }

  /** Resolves true once no task is queued or running, or false after `ms`. */
  #whenIdle(ms: number): Promise<boolean> {
    if (this.#active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? this.#clock.setTimeout(() => resolve(false), ms) : undefined;
      this.#idleWaiters.push(() => {
        this.#clock.clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #evict(taskId: string, reason: 'deleted' | 'evicted'): boolean {
    const record = this.#store.get(taskId);
    if (!record || !this.#store.delete(taskId)) return false;
    this.#idempotencyKeys.forgetTask(taskId);
    this.#broker.drop(taskId, reason, record.owner);
    this.#logger.debug({ taskId, reason }, 'task removed');
    return true;
  }

  #isoNow(): string {
    return new Date(this.#clock.now()).toISOString();
  }
}

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type {
  Broker,
  GlobalSubscription,
  LoggedEvent,
  NewTaskCreatedEvent,
  Subscriber,
  Subscription,
  TaskSubscription,
} from './broker/broker.ts';
import { systemClock, type Clock } from './clock.ts';
import { EndWaiters } from './end-waiters.ts';
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
import type { ExecutionOutcome, ExecutionRequest, Executor, ExecutorStats, ProgressReport } from './executor/executor.ts';
import { fingerprint } from './idempotency.ts';
import { Reaper } from './reaper.ts';
import { jsonBytes, recordBytes } from './retained-bytes.ts';
import { retryDelayMs } from './retry.ts';
import type { CancelRequestOutcome, TaskChanges, TaskRecord, TaskStore } from './store/task-store.ts';
import { toSnapshot } from './task-record.ts';
import { newTaskId } from './task-ids.ts';

export interface TaskServiceOptions {
  store: TaskStore;
  broker: Broker;
  executor: Executor;
  logger: Logger;
  taskTimeoutMs: number;
  retentionMs: number;
  /** Tasks kept at most; past it the oldest ended ones are evicted early. */
  maxRetainedTasks?: number;
  /**
   * Bytes kept at most, as the store and the broker count them (retainedBytes()); past it
   * the oldest ended tasks are evicted early.
   */
  maxRetainedBytes?: number;
  /**
   * How often the reaper also sweeps the store for expired tasks, besides evicting each
   * task that ended here on time: set when other processes share the store. 0: never.
   */
  reaperSweepMs?: number;
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

/** Statuses a transition may start from. */
const QUEUED: readonly TaskStatus[] = ['queued'];
const RUNNING: readonly TaskStatus[] = ['running'];
const NOT_ENDED: readonly TaskStatus[] = ['queued', 'running'];

const NO_PROGRESS: Progress = { value: null, text: null, step: null, total_steps: null, eta_ms: null };

export interface TaskServiceEventMap {
  /** A task changed status on this process (queued when created); the record is the new one. */
  transition: [record: TaskRecord];
  /** An event was published on a task's stream by this process. */
  published: [eventType: EventType];
}

/** One multi-task stream: a subscription per task, merged. */
export interface ManySubscription {
  records: TaskRecord[];
  /** History merged in publish order. */
  subscription: Subscription;
  /** Tasks whose terminal event the subscriber already has (at or before the resume point). */
  ended: ReadonlySet<string>;
}

/**
 * The task lifecycle: queued → running → completed | failed | cancelled, with exactly one
 * terminal event per task, always its last, and retries of retryable failures. Routes call
 * this; it drives the store, the broker and the executor, and tells observers (logs,
 * metrics) what happened. Every decision is a conditional transition in the store, so it
 * holds when several processes share the store, broker and queue.
 */
export class TaskService extends EventEmitter<TaskServiceEventMap> {
  readonly #store: TaskStore;
  readonly #broker: Broker;
  readonly #executor: Executor;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #reaper: Reaper;
  readonly #waiters: EndWaiters;
  readonly #taskTimeoutMs: number;
  readonly #retentionMs: number;
  readonly #maxRetainedTasks: number;
  readonly #maxRetainedBytes: number;
  /**
   * Bytes promised to creates under way: counted by the check of MAX_RETAINED_BYTES until
   * their task is stored and its task_created logged, so two creates cannot both take the
   * last room. Changed only inside #roomCheck.
   */
  #reservedBytes = 0;
  /** The room checks run one at a time: each sees what the previous one reserved or evicted. */
  #roomCheck: Promise<unknown> = Promise.resolve();
  /** Set by drain(): no new tasks or streams; existing ones run to their end. */
  #draining = false;
  #closing = false;
  /** Called after each executor event is applied: drain() re-checks whether any task is left. */
  readonly #endListeners = new Set<() => void>();
  /**
   * Executor events not yet applied, by task: each is applied after the previous one of the
   * same task has been, so a task's events are published in the order they happened.
   */
  readonly #applying = new Map<string, Promise<void>>();
  /**
   * Progress reported but not yet applied, by task. A task reporting faster than the store
   * and broker keep up has its backlog applied in one step: one store write for the latest
   * value, and every event published at once (pipelined, in order, on a network broker).
   */
  readonly #progressBacklog = new Map<string, ProgressReport[]>();
  /** Tasks whose current attempt the executor started on this process. */
  readonly #startedHere = new Set<string>();
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
    this.#maxRetainedBytes = options.maxRetainedBytes ?? Number.MAX_SAFE_INTEGER;
    this.#reaper = new Reaper({
      // The reaper runs on timers: nobody is there to answer an error but the log.
      evict: (taskId) =>
        this.#evict(taskId, 'evicted').catch((error: unknown) => {
          this.#logger.error({ err: error, taskId }, 'task not evicted');
          return false;
        }),
      expired: (now) => this.#store.expired(now, 1000),
      oldestEnded: () => this.#store.oldestEnded(),
      sweepEveryMs: options.reaperSweepMs ?? 0,
      clock: this.#clock,
    });
    this.#waiters = new EndWaiters({ broker: this.#broker, store: this.#store });
    this.#executor.on('started', (taskId, attempt) => {
      this.#startedHere.add(taskId);
      this.#apply(taskId, () => this.#onStarted(taskId, attempt));
    });
    this.#executor.on('progress', (taskId, progress) => this.#onProgressReported(taskId, progress));
    this.#executor.on('finished', (taskId, outcome) => this.#apply(taskId, () => this.#onFinished(taskId, outcome)));
  }

  /**
   * Creates a task for `owner` and queues it; its input was validated against its type's
   * schema. With an idempotency key the owner already used for the same body, returns that
   * task instead (`created: false`); with a different body, throws `idempotency_key_reused`.
   */
  async create(
    request: CreateTaskInput,
    {
      idempotencyKey,
      retryOf = null,
      owner,
    }: { idempotencyKey?: string | undefined; retryOf?: string | null; owner?: string | undefined } = {},
  ): Promise<{ record: TaskRecord; created: boolean }> {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    if ((await this.#store.size()) >= this.#maxRetainedTasks && !(await this.#reaper.evictOldest())) {
      throw errors.tooManyTasks(`${this.#maxRetainedTasks} tasks are kept and none has ended`);
    }
    const record: TaskRecord = {
      task_id: newTaskId(),
      type: request.type,
      status: 'queued',
      input: request.input,
      progress: NO_PROGRESS,
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
    const created = {
      event_type: 'task_created',
      task_id: record.task_id,
      timestamp: record.created_at,
      data: { task: toSnapshot(record) },
    } as const;
    // What the task takes as soon as it exists: its record, and its task_created in the
    // service-wide log (seq 0, as the broker numbers it).
    const need = recordBytes(record) + jsonBytes({ ...created, seq: 0 });
    if (!(await this.#reserveRoom(need))) {
      throw errors.tooManyTasks(`the task does not fit in ${this.#maxRetainedBytes} bytes beside the tasks kept, and none of them has ended`);
    }
    try {
      return await this.#createReserved(record, created, request, idempotencyKey);
    } finally {
      this.#releaseRoom(need);
    }
  }

  async #createReserved(
    record: TaskRecord,
    created: NewTaskCreatedEvent,
    request: CreateTaskInput,
    idempotencyKey: string | undefined,
  ): Promise<{ record: TaskRecord; created: boolean }> {
    const claim = idempotencyKey === undefined ? undefined : { key: idempotencyKey, fingerprint: fingerprint(request) };
    const outcome = await this.#store.create(record, claim);
    if (outcome.kind === 'existing') return { record: outcome.record, created: false };
    if (outcome.kind === 'key_reused') throw errors.idempotencyKeyReused(outcome.taskId);
    // The task's events wait for its task_created: in Redis mode a worker may take the job
    // and report its start before this publish is done, here (the apply chain holds it) or
    // on another instance (the broker holds it).
    let release!: () => void;
    this.#apply(record.task_id, () => new Promise<void>((resolve) => (release = resolve)));
    try {
      try {
        await this.#broker.expectCreated(record.task_id);
        // A drain that began meanwhile has already listed what to cancel: refuse instead.
        // Checked just before the submit, with no await between them.
        if (this.#draining) throw errors.shuttingDown();
        await this.#executor.submit(executionOf(record, 1));
      } catch (error) {
        // Nothing was published yet: the task never existed for anyone.
        await this.#store.delete(record.task_id);
        throw error;
      }
      await this.#broker.publish(created, record.owner);
    } finally {
      release();
    }
    this.emit('transition', record);
    return { record, created: true };
  }

  /** Starts a new task with a failed or cancelled task's type, input and options. */
  async retry(taskId: string, owner?: string): Promise<TaskRecord> {
    const old = await this.get(taskId, owner);
    if (old.status !== 'failed' && old.status !== 'cancelled') throw errors.taskNotRetryable(taskId, old.status);
    const { type, input, timeout_ms, priority, max_attempts, retry_backoff_ms, labels } = old;
    const { record } = await this.create(
      { type, input, timeout_ms, priority, max_attempts, retry_backoff_ms, labels },
      { retryOf: taskId, owner: old.owner ?? undefined },
    );
    return record;
  }

  /**
   * The task, if `owner` may see it: with an owner, another owner's task is "not found",
   * so its existence is never confirmed. Without one (no authentication), every task.
   */
  async get(taskId: string, owner?: string): Promise<TaskRecord> {
    const record = await this.#store.get(taskId);
    if (!record || (owner !== undefined && record.owner !== owner)) throw errors.taskNotFound(taskId);
    return record;
  }

  async list({ status, type, labels, owner, limit, cursor }: ListTasksInput): Promise<{ tasks: TaskRecord[]; next_cursor: string | null }> {
    const before = cursor === undefined ? undefined : decodeCursor(cursor);
    const { tasks, hasMore } = await this.#store.list({ status, type, labels, owner, limit, before });
    const last = tasks[tasks.length - 1];
    return { tasks, next_cursor: hasMore && last ? encodeCursor(last.task_id) : null };
  }

  /**
   * Cancels a queued or running task. A queued one has ended when this resolves; a running
   * one ends shortly, wherever it runs. Resolves with the task as it is then.
   */
  async cancel(taskId: string, owner?: string): Promise<TaskRecord> {
    const record = await this.get(taskId, owner);
    if (isTerminal(record.status)) throw errors.taskAlreadyEnded(taskId, record.status);
    const request = await this.#cancel(taskId, 'requested');
    if (!request.accepted) {
      // It ended on its own before the cancel reached the store, or was removed meanwhile.
      if (request.record) throw errors.taskAlreadyEnded(taskId, request.record.status);
      throw errors.taskNotFound(taskId);
    }
    // A queued task's end was reported during cancel(): let it be applied before answering.
    await this.#applied(taskId);
    return (await this.#store.get(taskId)) ?? request.record;
  }

  /** Deletes an ended task and ends its open streams. */
  async remove(taskId: string, owner?: string): Promise<void> {
    const record = await this.get(taskId, owner);
    if (!isTerminal(record.status)) throw errors.taskNotEnded(taskId, record.status);
    await this.#evict(taskId, 'deleted');
  }

  /** Deletes every task (of `owner`, if given) that ended with `status`; returns how many. */
  async clear(status: 'completed' | 'failed' | 'cancelled', owner?: string): Promise<number> {
    const { tasks } = await this.#store.list({ status, owner, limit: Number.MAX_SAFE_INTEGER });
    let deleted = 0;
    for (const task of tasks) if (await this.#evict(task.task_id, 'deleted')) deleted++;
    return deleted;
  }

  /**
   * Resolves with the task once it has ended, or as it is after `timeoutMs`, or when
   * `signal` aborts (the client went away). Resolves undefined if the task is removed.
   */
  async waitForEnd(taskId: string, timeoutMs: number, signal?: AbortSignal, owner?: string): Promise<TaskRecord | undefined> {
    return this.#waiters.wait(await this.get(taskId, owner), timeoutMs, signal);
  }

  /** Stops starting queued tasks (new ones are still accepted); running ones go on. */
  pause(): Promise<void> {
    return this.#executor.pause();
  }

  resume(): Promise<void> {
    return this.#executor.resume();
  }

  get reaperStatus() {
    return { ...this.#reaper.status, sweepEveryMs: this.#reaper.sweepEveryMs };
  }

  /**
   * Opens a stream on a task: the retained events after `afterSeq`, then live ones. The
   * record is read before subscribing: if it is not ended, its end arrives live.
   */
  async subscribe(
    taskId: string,
    afterSeq: number,
    subscriber: Subscriber,
    owner?: string,
  ): Promise<{ record: TaskRecord; subscription: TaskSubscription }> {
    this.#assertOpen();
    const record = await this.get(taskId, owner);
    return { record, subscription: await this.#broker.subscribe(taskId, { seq: afterSeq }, subscriber) };
  }

  /**
   * Opens one stream on several tasks: their retained events after the service-wide
   * `afterPosition`, merged in publish order, then live ones. Unknown ids (and other
   * owners' tasks) are skipped; if none is left, the first one is reported as not found.
   */
  async subscribeMany(
    taskIds: readonly string[],
    afterPosition: number,
    subscriber: Subscriber,
    owner?: string,
  ): Promise<ManySubscription> {
    this.#assertOpen();
    const found = await Promise.all([...new Set(taskIds)].map((taskId) => this.#store.get(taskId)));
    const records = found.filter(
      (record): record is TaskRecord => record !== undefined && (owner === undefined || record.owner === owner),
    );
    if (records.length === 0) throw errors.taskNotFound(taskIds[0] ?? '');
    const subscriptions = await Promise.all(
      records.map((record) => this.#broker.subscribe(record.task_id, { position: afterPosition }, subscriber)),
    );
    const history: LoggedEvent[] = subscriptions.flatMap((subscription) => subscription.history);
    history.sort((a, b) => a.position - b.position);
    const ended = new Set(records.filter((_, index) => subscriptions[index]!.ended).map((record) => record.task_id));
    return {
      records,
      ended,
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
  async subscribeAll(afterPosition: number | undefined, subscriber: Subscriber, owner?: string): Promise<GlobalSubscription> {
    this.#assertOpen();
    if (owner === undefined) return this.#broker.subscribeAll(afterPosition, subscriber);
    const own = (logged: LoggedEvent) => logged.owner === owner;
    const subscription = await this.#broker.subscribeAll(afterPosition, {
      deliver: (logged) => own(logged) && subscriber.deliver(logged),
      removed: (logged) => own(logged) && subscriber.removed(logged),
      ...(subscriber.lost ? { lost: () => subscriber.lost!() } : {}),
    });
    return { ...subscription, history: subscription.history.filter(own) };
  }

  /** Bytes held for tasks (records and event logs, see MAX_RETAINED_BYTES): of every process sharing the backends. */
  async retainedBytes(): Promise<number> {
    const [records, events] = await Promise.all([this.#store.retainedBytes(), this.#broker.retainedBytes()]);
    return records + events;
  }

  /** Tasks per status: of one owner, or of everyone. */
  taskCounts(owner?: string): Promise<Record<TaskStatus, number>> {
    return this.#store.counts(owner);
  }

  /** Tasks held, per status, open subscriptions on this process, and the executor's figures. */
  async stats(): Promise<{ tasks: number; byStatus: Record<TaskStatus, number>; streams: number } & ExecutorStats> {
    const [byStatus, executor] = await Promise.all([this.#store.counts(), this.#executor.stats()]);
    const tasks = Object.values(byStatus).reduce((sum, count) => sum + count, 0);
    return { tasks, byStatus, streams: this.#broker.subscriberCount, ...executor };
  }

  /** True once drain() has begun: the service is going away. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Stops taking tasks and streams, cancels the tasks waiting in this process, gives the ones
   * running here `graceMs` to finish, then cancels them (reason `shutdown`) and waits until
   * each has ended, so every stream has had its terminal event. Tasks waiting in a queue
   * shared with other processes stay there for them.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    // The grace period starts now, on the service's clock, whatever the awaits below take.
    let graceTimer: unknown;
    const graceOver = new Promise<false>((resolve) => (graceTimer = this.#clock.setTimeout(() => resolve(false), graceMs)));
    try {
      await this.#executor.stopStarting();
      for (const taskId of (await this.#executor.held()).waiting) await this.#cancel(taskId, 'shutdown');
      if (await Promise.race([this.#whenIdle(), graceOver])) return;
      for (const taskId of (await this.#executor.held()).running) await this.#cancel(taskId, 'shutdown');
      // Cancellation ends every task within the cancel grace period (the thread is terminated).
      await this.#whenIdle();
    } finally {
      this.#clock.clearTimeout(graceTimer);
    }
  }

  /** Evicts every ended task whose retention is over; returns how many. */
  reap(): Promise<number> {
    return this.#reaper.sweep();
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#draining = true;
    this.#reaper.close();
    await this.#executor.close();
    await Promise.all([this.#broker.close(), this.#store.close()]);
  }

  #assertOpen(): void {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
  }

  /**
   * Cancels a queued, delayed or running task, wherever it is held. Once the store has
   * accepted the cancel, it decides the task's end on every process: whatever else was
   * stopping the attempt (its timeout, a shutdown) or had just ended it, the end applied is
   * `cancelled` with the first cancel's reason, and the task is never retried.
   */
  async #cancel(taskId: string, reason: CancelReason): Promise<CancelRequestOutcome> {
    const request = await this.#store.requestCancel(taskId, reason);
    if (request.accepted) await this.#executor.cancel(taskId, reason);
    return request;
  }

  /** Applies one executor event of a task after the ones before it. */
  #apply(taskId: string, step: () => Promise<void>): void {
    const previous = this.#applying.get(taskId);
    const applied = (previous ? previous.then(step) : step()).catch((error: unknown) =>
      this.#logger.error({ err: error, taskId }, 'task event not applied'),
    );
    this.#applying.set(taskId, applied);
    void applied.then(() => {
      if (this.#applying.get(taskId) === applied) this.#applying.delete(taskId);
      for (const listener of this.#endListeners) listener();
    });
  }

  /** Resolves once every executor event of the task reported so far has been applied. */
  async #applied(taskId: string): Promise<void> {
    for (let pending = this.#applying.get(taskId); pending; pending = this.#applying.get(taskId)) await pending;
  }

  async #onStarted(taskId: string, attempt: number): Promise<void> {
    const started = await this.#store.transition(
      taskId,
      QUEUED,
      {
        status: 'running',
        attempt,
        error: null,
        // Progress is the current attempt's: a failed attempt's value and estimate are stale.
        progress: NO_PROGRESS,
        ...(attempt === 1 ? { started_at: this.#isoNow() } : {}),
      },
      { unlessCancelRequested: true },
    );
    if (!started.applied) {
      // It was cancelled while the executor was starting it: stop the run, which then ends it.
      if (started.cancelRequested) await this.#executor.cancel(taskId, started.cancelRequested);
      else if (started.record && isTerminal(started.record.status)) await this.#executor.cancel(taskId, 'requested');
      return;
    }
    const { record, previous } = started;
    this.#eta.reset(taskId);
    await this.#publish(record, 'task_started', {
      attempt: record.attempt,
      max_attempts: record.max_attempts,
      ...(previous.error ? { previous_error: previous.error } : {}),
    });
    this.emit('transition', record);
  }

  #onProgressReported(taskId: string, report: ProgressReport): void {
    const backlog = this.#progressBacklog.get(taskId);
    if (backlog) {
      backlog.push(report);
      return;
    }
    this.#progressBacklog.set(taskId, [report]);
    this.#apply(taskId, () => this.#applyProgress(taskId));
  }

  async #applyProgress(taskId: string): Promise<void> {
    const reports = this.#progressBacklog.get(taskId) ?? [];
    this.#progressBacklog.delete(taskId);
    const progresses: Progress[] = reports.map((report) => ({
      ...report,
      eta_ms: this.#eta.estimate(taskId, report.value, this.#clock.now()),
    }));
    const latest = progresses.at(-1);
    if (!latest) return;
    const updated = await this.#store.transition(taskId, RUNNING, { progress: latest });
    if (!updated.applied) return;
    const { record } = updated;
    await Promise.all(progresses.map((progress) => this.#publish(record, 'progress_update', progress)));
  }

  async #onFinished(taskId: string, reported: ExecutionOutcome): Promise<void> {
    this.#eta.reset(taskId);
    // A running attempt's end is applied where it ran (or by the process that found it lost).
    // A cancel that took the task out of a shared queue here ends it only if it was still
    // queued: the job may have just run and left the queue on another process, which then
    // applies that end after publishing the attempt's last progress.
    const ranHere = this.#startedHere.delete(taskId);
    const from = ranHere || reported.status !== 'cancelled' ? NOT_ENDED : QUEUED;
    if (reported.status === 'failed' && (await this.#retried(taskId, reported.error))) return;
    // Exactly one end: whichever outcome reaches the store first wins, on any process,
    // unless a cancel was accepted first: then the end is that cancel's.
    const finishedAt = this.#clock.now();
    const expiresAt = finishedAt + this.#retentionMs;
    let outcome = reported;
    let transition = await this.#store.transition(taskId, from, this.#endOf(outcome, finishedAt), { unlessCancelRequested: true });
    if (!transition.applied && transition.cancelRequested) {
      outcome = { status: 'cancelled', reason: transition.cancelRequested };
      transition = await this.#store.transition(taskId, from, this.#endOf(outcome, finishedAt));
    }
    if (!transition.applied) return;
    const { record } = transition;
    if (outcome.status === 'completed') await this.#publish(record, 'task_completed', { result: outcome.result });
    else if (outcome.status === 'failed') await this.#publish(record, 'task_failed', { error: outcome.error });
    else await this.#publish(record, 'task_cancelled', { reason: outcome.reason });
    this.#reaper.schedule(taskId, expiresAt);
    this.emit('transition', record);
    // The result may have taken the total past MAX_RETAINED_BYTES: make room now, this task
    // included if it is the oldest ended one left (its streams have had its end).
    await this.#checkRoom(() => this.#makeRoom(0));
  }

  /**
   * A failed attempt with attempts left goes back to queued, and the executor starts the
   * next attempt after the backoff. False if the failure is the task's end.
   */
  async #retried(taskId: string, error: TaskError): Promise<boolean> {
    if (!RETRYABLE_ERRORS.has(error.code) || this.#draining) return false;
    const current = await this.#store.get(taskId);
    if (!current || current.status !== 'running' || current.attempt >= current.max_attempts) return false;
    const requeued = await this.#store.transition(taskId, RUNNING, { status: 'queued', error }, { unlessCancelRequested: true });
    if (!requeued.applied) return false;
    const { record } = requeued;
    const delayMs = retryDelayMs(record.retry_backoff_ms, record.attempt + 1);
    try {
      await this.#executor.submit(executionOf(record, record.attempt + 1), { force: true, delayMs });
    } catch (submitError) {
      this.#logger.warn({ err: submitError, taskId }, 'retry not queued');
      return false;
    }
    this.#logger.debug({ taskId, attempt: record.attempt, delayMs, errorCode: error.code }, 'retry scheduled');
    this.emit('transition', record);
    return true;
  }

  async #publish<T extends EventType>(record: TaskRecord, event_type: T, data: EventData<T>): Promise<void> {
    const event = { event_type, task_id: record.task_id, timestamp: this.#isoNow(), data } as NewTaskEvent;
    await this.#broker.publish(event, record.owner);
    this.emit('published', event_type);
  }

  /** Resolves true once this process holds no task and every end reported here is applied. */
  async #whenIdle(): Promise<true> {
    const idle = async () => {
      const { waiting, running } = await this.#executor.held();
      return waiting.length + running.length === 0 && this.#applying.size === 0;
    };
    if (await idle()) return true;
    return new Promise((resolve) => {
      const check = () =>
        void idle().then((yes) => {
          if (!yes || !this.#endListeners.delete(check)) return;
          resolve(true);
        });
      this.#endListeners.add(check);
    });
  }

  /** Runs `check` after the room checks before it: one at a time. */
  #checkRoom<T>(check: () => Promise<T>): Promise<T> {
    const run = this.#roomCheck.then(check, check);
    this.#roomCheck = run.catch(() => undefined);
    return run;
  }

  /**
   * Evicts the oldest ended tasks until `need` more bytes fit within MAX_RETAINED_BYTES,
   * beside what other creates have reserved; false if they cannot (none is left to evict:
   * queued and running tasks are never evicted).
   */
  async #makeRoom(need: number): Promise<boolean> {
    while ((await this.retainedBytes()) + this.#reservedBytes + need > this.#maxRetainedBytes) {
      if (!(await this.#reaper.evictOldest())) return false;
    }
    return true;
  }

  /** Makes room for a new task and reserves it until #releaseRoom(); false if it cannot. */
  #reserveRoom(need: number): Promise<boolean> {
    return this.#checkRoom(async () => {
      if (!(await this.#makeRoom(need))) return false;
      this.#reservedBytes += need;
      return true;
    });
  }

  /**
   * Ends a reservation once the task's bytes are in the backends' totals (or it was never
   * stored). Queued behind the checks under way, so none of them sees those bytes in neither.
   */
  #releaseRoom(need: number): void {
    void this.#checkRoom(() => {
      this.#reservedBytes -= need;
      return Promise.resolve();
    });
  }

  /** Removes a task and tells its streams; false if it was already gone. */
  async #evict(taskId: string, reason: 'deleted' | 'evicted'): Promise<boolean> {
    const record = await this.#store.delete(taskId);
    if (!record) return false;
    await this.#broker.drop(taskId, reason, record.owner);
    this.#logger.debug({ taskId, reason }, 'task removed');
    return true;
  }

  /** The changes that end a task with `outcome` at `finishedAt` (epoch ms). */
  #endOf(outcome: ExecutionOutcome, finishedAt: number): TaskChanges {
    return {
      status: outcome.status,
      finished_at: this.#isoAt(finishedAt),
      expires_at: new Date(finishedAt + this.#retentionMs).toISOString(),
      // A cancel between attempts leaves the failed attempt's error behind: not this end's.
      result: outcome.status === 'completed' ? outcome.result : null,
      error: outcome.status === 'failed' ? outcome.error : null,
    };
  }

  #isoNow(): string {
    return this.#isoAt(this.#clock.now());
  }

  /** The last instant formatted, kept: many transitions fall in the same millisecond. */
  #lastIso = { ms: Number.NaN, iso: '' };

  #isoAt(ms: number): string {
    const last = this.#lastIso;
    if (last.ms !== ms) {
      last.ms = ms;
      last.iso = new Date(ms).toISOString();
    }
    return last.iso;
  }
}

const executionOf = (record: TaskRecord, attempt: number): ExecutionRequest => ({
  taskId: record.task_id,
  type: record.type,
  input: record.input,
  timeoutMs: record.timeout_ms,
  priority: record.priority,
  attempt,
});

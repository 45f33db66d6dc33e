import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import type { Broker, GlobalSubscription, LoggedEvent, Subscriber, Subscription } from './broker/broker.ts';
import { AppError, errors } from './errors.ts';
import {
  isTerminal,
  type CancelReason,
  type EventData,
  type EventType,
  type NewTaskEvent,
  type Progress,
  type TaskStatus,
} from './events.ts';
import type { ExecutionOutcome, Executor } from './executor/executor.ts';
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
  clock?: Clock;
}

export interface CreateTaskInput {
  type: string;
  input: unknown;
  timeout_ms?: number | undefined;
}

export interface ListTasksInput {
  status?: TaskStatus | undefined;
  type?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

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
  /** Set by drain(): no new tasks or streams; existing ones run to their end. */
  #draining = false;
  #closing = false;
  /** Tasks not yet ended. drain() waits for this to reach zero. */
  #active = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(options: TaskServiceOptions) {
    super();
    this.#store = options.store;
    this.#broker = options.broker;
    this.#executor = options.executor;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#taskTimeoutMs = options.taskTimeoutMs;
    this.#retentionMs = options.retentionMs;
    this.#reaper = new Reaper({ evict: (taskId) => this.#evict(taskId, 'evicted'), clock: this.#clock });
    this.#executor.on('started', (taskId) => this.#onStarted(taskId));
    this.#executor.on('progress', (taskId, progress) => this.#onProgress(taskId, progress));
    this.#executor.on('finished', (taskId, outcome) => this.#onFinished(taskId, outcome));
  }

  /** Creates a task and queues it. Its input was validated against its type's schema. */
  create({ type, input, timeout_ms }: CreateTaskInput): TaskRecord {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    const record: TaskRecord = {
      task_id: uuidv7(),
      type,
      status: 'queued',
      input,
      progress: { value: null, text: null },
      result: null,
      error: null,
      created_at: this.#isoNow(),
      started_at: null,
      finished_at: null,
      expires_at: null,
      timeout_ms: timeout_ms ?? this.#taskTimeoutMs,
    };
    this.#store.insert(record);
    try {
      this.#executor.submit({ taskId: record.task_id, type, input, timeoutMs: record.timeout_ms });
    } catch (error) {
      // Nothing was published yet: the task never existed for anyone.
      this.#store.delete(record.task_id);
      throw error;
    }
    this.#active++;
    this.#broker.publish({
      event_type: 'task_created',
      task_id: record.task_id,
      timestamp: record.created_at,
      data: { task: toSnapshot(record) },
    });
    this.emit('transition', record);
    return record;
  }

  get(taskId: string): TaskRecord {
    const record = this.#store.get(taskId);
    if (!record) throw errors.taskNotFound(taskId);
    return record;
  }

  list({ status, type, limit, cursor }: ListTasksInput): { tasks: TaskRecord[]; next_cursor: string | null } {
    const before = cursor === undefined ? undefined : decodeCursor(cursor);
    const { tasks, hasMore } = this.#store.list({ status, type, limit, before });
    const last = tasks[tasks.length - 1];
    return { tasks, next_cursor: hasMore && last ? encodeCursor(last.task_id) : null };
  }

  /** Cancels a queued or running task. A queued one ends at once; a running one shortly. */
  cancel(taskId: string, reason: CancelReason = 'requested'): TaskRecord {
    const record = this.get(taskId);
    if (isTerminal(record.status)) throw errors.taskAlreadyEnded(taskId, record.status);
    this.#executor.cancel(taskId, reason);
    return this.get(taskId);
  }

  /** Deletes an ended task and ends its open streams. */
  remove(taskId: string): void {
    const record = this.get(taskId);
    if (!isTerminal(record.status)) throw errors.taskNotEnded(taskId, record.status);
    this.#evict(taskId, 'deleted');
  }

  /**
   * Opens a stream on a task: the retained events after `afterSeq`, then live ones. The
   * record is read in the same tick as the subscription, so the two agree.
   */
  subscribe(taskId: string, afterSeq: number, subscriber: Subscriber): { record: TaskRecord; subscription: Subscription } {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    const record = this.get(taskId);
    return { record, subscription: this.#broker.subscribe(taskId, { seq: afterSeq }, subscriber) };
  }

  /**
   * Opens one stream on several tasks: their retained events after the service-wide
   * `afterPosition`, merged in publish order, then live ones. Unknown ids are skipped;
   * if none is known, the first one is reported as not found.
   */
  subscribeMany(
    taskIds: readonly string[],
    afterPosition: number,
    subscriber: Subscriber,
  ): { records: TaskRecord[]; subscription: Subscription } {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    const records = [...new Set(taskIds)].map((taskId) => this.#store.get(taskId)).filter((record) => record !== undefined);
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
        unsubscribe: () => subscriptions.forEach((subscription) => subscription.unsubscribe()),
      },
    };
  }

  /** Opens a stream on every task: history after `afterPosition` if given, then live events. */
  subscribeAll(afterPosition: number | undefined, subscriber: Subscriber): GlobalSubscription {
    if (this.#draining || this.#closing) throw errors.shuttingDown();
    return this.#broker.subscribeAll(afterPosition, subscriber);
  }

  get stats() {
    return { tasks: this.#store.size, streams: this.#broker.subscriberCount, ...this.#executor.stats };
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
    for (const taskId of this.#activeTaskIds('queued')) this.#executor.cancel(taskId, 'shutdown');
    if (await this.#whenIdle(graceMs)) return;
    for (const taskId of this.#activeTaskIds('running')) this.#executor.cancel(taskId, 'shutdown');
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
    await this.#executor.close();
    this.#broker.close();
  }

  #onStarted(taskId: string): void {
    const record = this.#store.update(taskId, { status: 'running', started_at: this.#isoNow() });
    if (!record) return;
    this.#publishEvent(taskId, 'task_started', {});
    this.emit('transition', record);
  }

  #onProgress(taskId: string, progress: Progress): void {
    const record = this.#store.get(taskId);
    if (record?.status !== 'running') return;
    this.#store.update(taskId, { progress });
    this.#publishEvent(taskId, 'progress_update', progress);
  }

  #onFinished(taskId: string, outcome: ExecutionOutcome): void {
    const record = this.#store.get(taskId);
    if (!record || isTerminal(record.status)) return;
    const finishedAt = this.#clock.now();
    const expiresAt = finishedAt + this.#retentionMs;
    this.#active--;
    const ended = {
      status: outcome.status,
      finished_at: new Date(finishedAt).toISOString(),
      expires_at: new Date(expiresAt).toISOString(),
    };
    if (outcome.status === 'completed') {
      this.#store.update(taskId, { ...ended, result: outcome.result });
      this.#publishEvent(taskId, 'task_completed', { result: outcome.result });
    } else if (outcome.status === 'failed') {
      this.#store.update(taskId, { ...ended, error: outcome.error });
      this.#publishEvent(taskId, 'task_failed', { error: outcome.error });
    } else {
      this.#store.update(taskId, ended);
      this.#publishEvent(taskId, 'task_cancelled', { reason: outcome.reason });
    }
    this.#reaper.schedule(taskId, expiresAt);
    this.emit('transition', this.#store.get(taskId)!);
    if (this.#active === 0) this.#wakeIdleWaiters();
  }

  #publishEvent<T extends EventType>(taskId: string, event_type: T, data: EventData<T>): void {
    this.#broker.publish({ event_type, task_id: taskId, timestamp: this.#isoNow(), data } as NewTaskEvent);
    this.emit('published', event_type);
  }

  #activeTaskIds(status: 'queued' | 'running'): string[] {
    return this.#store.list({ status, limit: Number.MAX_SAFE_INTEGER }).tasks.map((task) => task.task_id);
  }

  /** Resolves true once no task is queued or running, or false after `ms`. */
  #whenIdle(ms: number): Promise<boolean> {
    if (this.#active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => resolve(false), ms) : undefined;
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #evict(taskId: string, reason: 'deleted' | 'evicted'): void {
    if (!this.#store.delete(taskId)) return;
    this.#broker.drop(taskId, reason);
    this.#logger.debug({ taskId, reason }, 'task removed');
  }

  #isoNow(): string {
    return new Date(this.#clock.now()).toISOString();
  }
}

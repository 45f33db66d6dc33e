import { isTerminalEvent, type NewTaskEvent } from '../events.ts';
import type { StreamEvent } from '../stream-events.ts';
import {
  LoggedEvent,
  type Broker,
  type GlobalSubscription,
  type NewTaskCreatedEvent,
  type ResumePoint,
  type Subscriber,
  type Subscription,
  type TaskSubscription,
} from './broker.ts';

interface TaskLog {
  lastSeq: number;
  /** Sorted by seq and by position. Lifecycle events are never removed; progress is thinned. */
  events: LoggedEvent[];
  progressCount: number;
  /** Bytes of the JSON of `events`. */
  bytes: number;
  /** Made with the first subscriber: most tasks never have one of their own. */
  subscribers: Set<Subscriber> | undefined;
  /** The terminal event, once logged: always the last. */
  terminal: LoggedEvent | undefined;
}

export interface MemoryBrokerOptions {
  /** Progress events per task kept for replay (between 1× and 2× this many). */
  progressHistory: number;
  /** Events of all tasks kept for resuming the multiplexed stream (between 1× and 2×). */
  globalHistory: number;
  /** Bytes of JSON the service-wide log holds at most; its oldest events go first. Unbounded by default. */
  globalHistoryBytes?: number;
  /** The first position; by default the boot time in microseconds, so ids grow across restarts. */
  firstPosition?: number;
}

/**
 * The in-process broker: replay logs in memory and synchronous fan-out. Each call runs to
 * completion before it returns (the promises carry values already computed), so nothing can
 * slip in between reading a history and adding its subscriber.
 */
export class MemoryBroker implements Broker {
  readonly #logs = new Map<string, TaskLog>();
  readonly #allSubscribers = new Set<Subscriber>();
  readonly #progressHistory: number;
  readonly #globalHistory: number;
  readonly #globalHistoryBytes: number;
  /**
   * Sorted by position. Trimmed to the newest `globalHistory` in batches, and to at most
   * `globalHistoryBytes` at every append.
   */
  #global: LoggedEvent[] = [];
  /** Bytes of the JSON of `#global`, and of every task log's events: running totals. */
  #globalBytes = 0;
  #taskBytes = 0;
  #lastPosition: number;
  #subscriberCount = 0;

  constructor({
    progressHistory,
    globalHistory,
    globalHistoryBytes = Number.MAX_SAFE_INTEGER,
    firstPosition = Date.now() * 1000,
  }: MemoryBrokerOptions) {
    this.#progressHistory = progressHistory;
    this.#globalHistory = globalHistory;
    this.#globalHistoryBytes = globalHistoryBytes;
    this.#lastPosition = firstPosition - 1;
  }

  expectCreated(): Promise<void> {
    return Promise.resolve();
  }

  publish(event: NewTaskEvent | NewTaskCreatedEvent, owner: string | null): Promise<LoggedEvent> {
    if (event.event_type === 'task_created') {
      const logged = this.#log0({ ...event, seq: 0 }, owner);
      for (const subscriber of this.#allSubscribers) subscriber.deliver(logged);
      return Promise.resolve(logged);
    }
    const log = this.#taskLog(event.task_id);
    const { event_type, task_id, timestamp, data } = event;
    const logged = this.#log0({ event_type, task_id, seq: ++log.lastSeq, timestamp, data } as StreamEvent, owner);
    log.events.push(logged);
    const bytes = Buffer.byteLength(logged.json);
    log.bytes += bytes;
    this.#taskBytes += bytes;
    if (event_type === 'progress_update') {
      if (++log.progressCount > 2 * this.#progressHistory) this.#thin(log);
    } else if (isTerminalEvent(logged)) {
      log.terminal = logged;
    }
    if (log.subscribers) for (const subscriber of log.subscribers) subscriber.deliver(logged);
    for (const subscriber of this.#allSubscribers) subscriber.deliver(logged);
    return Promise.resolve(logged);
  }

  subscribe(taskId: string, after: ResumePoint, subscriber: Subscriber): Promise<TaskSubscription> {
    const log = this.#taskLog(taskId);
    const bySeq = 'seq' in after;
    const history = bySeq
      ? log.events.slice(firstAfter(log.events, after.seq, (logged) => logged.seq))
      : log.events.slice(firstAfter(log.events, after.position, (logged) => logged.position));
    const { terminal } = log;
    const ended =
      terminal !== undefined && (bySeq ? terminal.seq <= after.seq : terminal.position <= after.position);
    (log.subscribers ??= new Set()).add(subscriber);
    const remove = () => {
      log.subscribers?.delete(subscriber);
      // A log opened only by subscribers (a task with no events yet, or one already dropped).
      if (log.events.length === 0 && !log.subscribers?.size && this.#logs.get(taskId) === log) {
        this.#logs.delete(taskId);
      }
    };
    const newest = bySeq ? log.lastSeq : this.#lastPosition;
    return Promise.resolve({ ...this.#track(history, newest, remove), ended });
  }

  subscribeAll(afterPosition: number | undefined, subscriber: Subscriber): Promise<GlobalSubscription> {
    let history: LoggedEvent[] = [];
    let complete = true;
    if (afterPosition !== undefined) {
      const oldest = this.#global[0]?.position ?? this.#lastPosition + 1;
      // Complete only if nothing after the resume point was trimmed, and the point is ours.
      complete = afterPosition >= oldest - 1 && afterPosition <= this.#lastPosition;
      if (complete) history = this.#global.slice(firstAfter(this.#global, afterPosition, (logged) => logged.position));
    }
    this.#allSubscribers.add(subscriber);
    const remove = () => this.#allSubscribers.delete(subscriber);
    return Promise.resolve({ ...this.#track(history, this.#lastPosition, remove), complete });
  }

  drop(taskId: string, reason: 'deleted' | 'evicted', owner: string | null): Promise<void> {
    const log = this.#logs.get(taskId);
    this.#logs.delete(taskId);
    if (log) this.#taskBytes -= log.bytes;
    const removed = this.#log0(
      { event_type: 'task_removed', task_id: taskId, seq: 0, timestamp: new Date().toISOString(), data: { reason } },
      owner,
    );
    for (const subscriber of this.#allSubscribers) subscriber.deliver(removed);
    if (log?.subscribers) for (const subscriber of [...log.subscribers]) subscriber.removed(removed);
    return Promise.resolve();
  }

  retainedBytes(): Promise<number> {
    return Promise.resolve(this.#taskBytes + this.#globalBytes);
  }

  get subscriberCount(): number {
    return this.#subscriberCount;
  }

  close(): Promise<void> {
    this.#logs.clear();
    this.#allSubscribers.clear();
    this.#global = [];
    this.#globalBytes = 0;
    this.#taskBytes = 0;
    return Promise.resolve();
  }

  /** Gives an event its position and appends it to the service-wide log. */
  #log0(event: StreamEvent, owner: string | null): LoggedEvent {
    const logged = new LoggedEvent(event, JSON.stringify(event), ++this.#lastPosition, owner);
    this.#global.push(logged);
    this.#globalBytes += Buffer.byteLength(logged.json);
    if (this.#global.length > 2 * this.#globalHistory || this.#globalBytes > this.#globalHistoryBytes) this.#trimGlobal();
    return logged;
  }

  /**
   * Drops the oldest service-wide events: down to `globalHistory` once there are twice as
   * many, and down to `globalHistoryBytes` (but the newest event stays, however large, as
   * in a Redis stream, whose newest entry numbers the next). A resume point among them then
   * gets `complete: false`.
   */
  #trimGlobal(): void {
    let cut = Math.max(0, this.#global.length - (this.#global.length > 2 * this.#globalHistory ? this.#globalHistory : Infinity));
    let dropped = 0;
    for (let i = 0; i < cut; i++) dropped += Buffer.byteLength(this.#global[i]!.json);
    while (cut < this.#global.length - 1 && this.#globalBytes - dropped > this.#globalHistoryBytes) {
      dropped += Buffer.byteLength(this.#global[cut++]!.json);
    }
    this.#global = this.#global.slice(cut);
    this.#globalBytes -= dropped;
  }

  #track(history: LoggedEvent[], newest: number, remove: () => unknown): Subscription {
    this.#subscriberCount++;
    let active = true;
    return {
      history,
      newest,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        remove();
        this.#subscriberCount--;
      },
    };
  }

  #taskLog(taskId: string): TaskLog {
    let log = this.#logs.get(taskId);
    if (!log) {
      log = { lastSeq: 0, events: [], progressCount: 0, bytes: 0, subscribers: undefined, terminal: undefined };
      this.#logs.set(taskId, log);
    }
    return log;
  }

  /** Keeps every lifecycle event and the newest `progressHistory` progress events. */
  #thin(log: TaskLog): void {
    let dropProgress = log.progressCount - this.#progressHistory;
    log.events = log.events.filter((logged) => {
      if (logged.event_type !== 'progress_update' || dropProgress === 0) return true;
      dropProgress--;
      const bytes = Buffer.byteLength(logged.json);
      log.bytes -= bytes;
      this.#taskBytes -= bytes;
      return false;
    });
    log.progressCount = this.#progressHistory;
  }
}

/** Index of the first event whose key is greater than `after` (events sorted by key). */
function firstAfter(events: readonly LoggedEvent[], after: number, key: (logged: LoggedEvent) => number): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (key(events[mid]!) <= after) low = mid + 1;
    else high = mid;
  }
  return low;
}

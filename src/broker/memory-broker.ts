import type { NewTaskEvent, TaskEvent } from '../events.ts';
import type { Broker, LoggedEvent, Subscriber, Subscription } from './broker.ts';

interface TaskLog {
  lastSeq: number;
  /** Sorted by seq. Lifecycle events are never removed; progress is thinned (see #thin). */
  events: LoggedEvent[];
  progressCount: number;
  subscribers: Set<Subscriber>;
}

export interface MemoryBrokerOptions {
  /** Progress events per task kept for replay. */
  progressHistory: number;
}

/** The in-process broker: replay logs in memory and synchronous fan-out. */
export class MemoryBroker implements Broker {
  readonly #logs = new Map<string, TaskLog>();
  readonly #progressHistory: number;
  #subscriberCount = 0;

  constructor({ progressHistory }: MemoryBrokerOptions) {
    this.#progressHistory = progressHistory;
  }

  publish(event: NewTaskEvent): LoggedEvent {
    const log = this.#log(event.task_id);
    const { event_type, task_id, timestamp, data } = event;
    const numbered = { event_type, task_id, seq: ++log.lastSeq, timestamp, data } as TaskEvent;
    const logged: LoggedEvent = { event: numbered, json: JSON.stringify(numbered) };
    log.events.push(logged);
    if (numbered.event_type === 'progress_update' && ++log.progressCount > 2 * this.#progressHistory) {
      this.#thin(log);
    }
    for (const subscriber of log.subscribers) subscriber.deliver(logged);
    return logged;
  }

  subscribe(taskId: string, afterSeq: number, subscriber: Subscriber): Subscription {
    const log = this.#log(taskId);
    const history = this.history(taskId, afterSeq);
    // Publishing is synchronous, so nothing can slip in between reading history and adding.
    log.subscribers.add(subscriber);
    this.#subscriberCount++;
    let active = true;
    return {
      history,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        if (log.subscribers.delete(subscriber)) this.#subscriberCount--;
      },
    };
  }

  history(taskId: string, afterSeq: number): readonly LoggedEvent[] {
    const events = this.#logs.get(taskId)?.events;
    if (!events) return [];
    // Binary search for the first event with seq > afterSeq.
    let low = 0;
    let high = events.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (events[mid]!.event.seq <= afterSeq) low = mid + 1;
      else high = mid;
    }
    return events.slice(low);
  }

  drop(taskId: string): void {
    const log = this.#logs.get(taskId);
    if (!log) return;
    this.#logs.delete(taskId);
    this.#subscriberCount -= log.subscribers.size;
    const subscribers = [...log.subscribers];
    log.subscribers.clear();
    for (const subscriber of subscribers) subscriber.end();
  }

  get subscriberCount(): number {
    return this.#subscriberCount;
  }

  close(): void {
    for (const taskId of [...this.#logs.keys()]) this.drop(taskId);
  }

  #log(taskId: string): TaskLog {
    let log = this.#logs.get(taskId);
    if (!log) {
      log = { lastSeq: 0, events: [], progressCount: 0, subscribers: new Set() };
      this.#logs.set(taskId, log);
    }
    return log;
  }

  /** Keeps every lifecycle event and the newest `progressHistory` progress events. */
  #thin(log: TaskLog): void {
    let dropProgress = log.progressCount - this.#progressHistory;
    log.events = log.events.filter((logged) => {
      if (logged.event.event_type !== 'progress_update' || dropProgress === 0) return true;
      dropProgress--;
      return false;
    });
    log.progressCount = this.#progressHistory;
  }
}

import type { NewTaskEvent } from '../events.ts';
import type { StreamEvent, TaskCreatedEvent } from '../stream-events.ts';

/** An event as the broker keeps it: serialized once at publish, however many streams carry it. */
export interface LoggedEvent {
  readonly event: StreamEvent;
  readonly json: string;
  /**
   * The event's place in the service-wide order of events: the multiplexed stream's SSE id.
   * Increases across restarts too (it starts from the boot time), so an id from an earlier
   * run is always older than anything retained.
   */
  readonly position: number;
  /** The owner of the event's task (not sent): streams show each caller only its own. */
  readonly owner: string | null;
}

/** A stream's view of events. Calls are synchronous and must not throw. */
export interface Subscriber {
  deliver(logged: LoggedEvent): void;
  /** The task is gone (deleted or evicted); `removed` is its task_removed event. */
  removed(removed: LoggedEvent): void;
}

export interface Subscription {
  /** Retained events after the resume point, oldest first; live ones follow via deliver(). */
  readonly history: readonly LoggedEvent[];
  /**
   * The newest id handed out so far on this kind of stream: the task's last seq (for a
   * `{ seq }` resume point), else the last service-wide position. A resume point past it
   * was never sent.
   */
  readonly newest: number;
  unsubscribe(): void;
}

export interface GlobalSubscription extends Subscription {
  /** False when events after the resume point are no longer retained: the client must reload. */
  readonly complete: boolean;
}

/** Where a stream resumes: after a task's own seq, or after a service-wide position. */
export type ResumePoint = { seq: number } | { position: number };

export type NewTaskCreatedEvent = Omit<TaskCreatedEvent, 'seq'>;

/**
 * Numbers events, keeps bounded replay logs (one per task and one service-wide) and fans
 * events out to subscribers. Implementations: MemoryBroker.
 */
export interface Broker {
  /** Numbers a task event (seq per task, position service-wide), logs it and delivers it. */
  publish(event: NewTaskEvent | NewTaskCreatedEvent, owner: string | null): LoggedEvent;
  /** One task's history after `after`, then its live events, with no gap or duplicate. */
  subscribe(taskId: string, after: ResumePoint, subscriber: Subscriber): Subscription;
  /**
   * Every task's events: with `afterPosition`, the service-wide history after it, then live;
   * without, live only.
   */
  subscribeAll(afterPosition: number | undefined, subscriber: Subscriber): GlobalSubscription;
  /** Forgets a task's log, publishes its task_removed and tells its subscribers. */
  drop(taskId: string, reason: 'deleted' | 'evicted', owner: string | null): void;
  /** Open subscriptions over all tasks. */
  readonly subscriberCount: number;
  close(): void;
}

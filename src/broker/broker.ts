import type { NewTaskEvent, TaskEvent } from '../events.ts';

/** An event as the broker keeps it: the event and its JSON, serialized once at publish. */
export interface LoggedEvent {
  readonly event: TaskEvent;
  readonly json: string;
}

/** One stream's view of a task's events. Calls are synchronous and must not throw. */
export interface Subscriber {
  /** A new event for the task. */
  deliver(logged: LoggedEvent): void;
  /** The task is gone (deleted or evicted): no more events will come. */
  end(): void;
}

export interface Subscription {
  /** Retained events after the requested seq, oldest first; live ones follow via deliver(). */
  readonly history: readonly LoggedEvent[];
  unsubscribe(): void;
}

/**
 * Numbers each task's events, keeps a bounded replay log per task and fans events out to
 * subscribers. Implementations: MemoryBroker.
 */
export interface Broker {
  /** Assigns the next seq of the event's task, logs it and delivers it to every subscriber. */
  publish(event: NewTaskEvent): LoggedEvent;
  /** History after `afterSeq` plus live delivery, with no gap and no duplicate between them. */
  subscribe(taskId: string, afterSeq: number, subscriber: Subscriber): Subscription;
  /** Retained events after `afterSeq`, oldest first. */
  history(taskId: string, afterSeq: number): readonly LoggedEvent[];
  /** Forgets a task's log and ends its subscribers. */
  drop(taskId: string): void;
  /** Open subscriptions over all tasks. */
  readonly subscriberCount: number;
  close(): void;
}

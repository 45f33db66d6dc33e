import type { NewTaskEvent } from '../events.ts';
import type { StreamEvent, TaskCreatedEvent } from '../stream-events.ts';

/**
 * An event as a broker keeps it: serialized once at publish, however many streams carry
 * it, with the few fields that routing and replay read. It keeps no object form: a task's
 * events live as long as the task, and their objects (a snapshot in task_created) would
 * multiply what every retained task holds and what each garbage collection copies.
 */
export class LoggedEvent {
  readonly event_type: StreamEvent['event_type'];
  readonly task_id: string;
  /** The event's number in its task's stream; 0 for task_created and task_removed. */
  readonly seq: number;
  readonly json: string;
  /**
   * The event's place in the service-wide order of events: the multiplexed stream's SSE id.
   * Increases across restarts too (it starts from the boot time), so an id from an earlier
   * run is always older than anything retained.
   */
  readonly position: number;
  /** The owner of the event's task (not sent): streams show each caller only its own. */
  readonly owner: string | null;

  constructor(event: Pick<StreamEvent, 'event_type' | 'task_id' | 'seq'>, json: string, position: number, owner: string | null) {
    this.event_type = event.event_type;
    this.task_id = event.task_id;
    this.seq = event.seq;
    this.json = json;
    this.position = position;
    this.owner = owner;
  }

  /** The event as an object, parsed again at each call: for the rare reader of every field. */
  get event(): StreamEvent {
    return JSON.parse(this.json) as StreamEvent;
  }
}

/**
 * A stream's view of events. Calls are synchronous, fast and must not throw: a broker calls
 * them in a loop over every subscriber. They may come before subscribe() has resolved
 * (events published while it was opening): a subscriber buffers those until it is ready.
 */
export interface Subscriber {
  deliver(logged: LoggedEvent): void;
  /** The task is gone (deleted or evicted); `removed` is its task_removed event. */
  removed(removed: LoggedEvent): void;
  /**
   * The broker can no longer promise this subscriber every event (its backend went away):
   * end the stream, so the client resumes from its last event id. A broker over a network
   * calls it; the in-process one never does.
   */
  lost?(): void;
}

export interface Subscription {
  /**
   * Retained events after the resume point, oldest first. Every event published after them
   * goes to deliver(): none is in both, none in neither (no gap, no duplicate).
   */
  readonly history: readonly LoggedEvent[];
  /**
   * The newest id handed out so far on this kind of stream, read with the history: the
   * task's last seq (for a `{ seq }` resume point), else the last service-wide position. A
   * resume point past it was never sent.
   */
  readonly newest: number;
  /** Stops deliveries. Idempotent. */
  unsubscribe(): void;
}

export interface TaskSubscription extends Subscription {
  /**
   * The task's terminal event is logged at or before the resume point: the subscriber
   * already has it, so nothing more will come (an HTTP stream answers 204).
   */
  readonly ended: boolean;
}

export interface GlobalSubscription extends Subscription {
  /** False when events after the resume point are no longer retained: the client must reload. */
  readonly complete: boolean;
}

/**
 * Where a stream resumes: after a task's own seq, or after a service-wide position.
 * `{ seq: Number.MAX_SAFE_INTEGER }` means "live events only".
 */
export type ResumePoint = { seq: number } | { position: number };

export type NewTaskCreatedEvent = Omit<TaskCreatedEvent, 'seq'>;

/**
 * Numbers events, keeps bounded replay logs (one per task and one service-wide) and fans
 * events out to subscribers, on every process that shares the broker.
 *
 * Per task, the log keeps every lifecycle event and the newest progress events (older
 * progress is thinned); service-wide, the newest events of all tasks, within a count
 * (`globalHistory`) and a size in bytes (`globalHistoryBytes`): the oldest go first. Implementations:
 * MemoryBroker. Network implementations reject with AppError `backend_unavailable` when
 * the backend cannot be reached.
 */
export interface Broker {
  /**
   * Numbers a task event and logs it, as one atomic step: its `seq` is the task's previous
   * seq + 1 (task_created has seq 0 and goes to the service-wide log only) and its
   * `position` is greater than that of every event published before it, on any process.
   * Resolves once the event is logged; subscribers get it via deliver(), on every process.
   * The caller publishes one task's events one at a time, in order.
   */
  publish(event: NewTaskEvent | NewTaskCreatedEvent, owner: string | null): Promise<LoggedEvent>;
  /**
   * Says the task's task_created is on its way: the task is being queued, and with a queue
   * shared between processes it may start on another one before its creator has published
   * task_created. Until then the task's first event, published anywhere, waits for it (for
   * a bounded time: its creator may die in between), so every log has task_created first.
   * The in-process broker has nothing to do: one process publishes both, in order.
   */
  expectCreated(taskId: string): Promise<void>;
  /**
   * One task's retained events after `after`, then its live events, with no gap or
   * duplicate between the two. A task with no events yet (or an unknown id) has an empty
   * history; its events are delivered once published.
   */
  subscribe(taskId: string, after: ResumePoint, subscriber: Subscriber): Promise<TaskSubscription>;
  /**
   * Every task's events: with `afterPosition`, the service-wide history after it, then live;
   * without, live only. Carries task_created and task_removed too.
   */
  subscribeAll(afterPosition: number | undefined, subscriber: Subscriber): Promise<GlobalSubscription>;
  /**
   * Forgets a task's log, publishes its task_removed (seq 0) to subscribeAll() subscribers
   * and calls removed() on the task's own subscribers, on every process.
   */
  drop(taskId: string, reason: 'deleted' | 'evicted', owner: string | null): Promise<void>;
  /**
   * Bytes of the events logged (each event's JSON, counted once per log that holds it: the
   * task's and the service-wide one), kept as a running total by publish, thinning,
   * trimming and drop. With a shared backend, the total of every process's events.
   */
  retainedBytes(): Promise<number>;
  /** Open subscriptions on this process, over all tasks. */
  readonly subscriberCount: number;
  /** Ends deliveries and releases connections. Idempotent. */
  close(): Promise<void>;
}

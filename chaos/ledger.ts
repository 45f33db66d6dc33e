import type { CreateRequest } from './api.ts';
import type { Frame } from './sse-session.ts';
import type { Violations } from './violations.ts';

export const TERMINAL_EVENTS = new Set(['task_completed', 'task_failed', 'task_cancelled']);

/** A task event as the all-tasks stream delivered it. */
export interface SeenEvent {
  seq: number;
  event: string;
  data: any;
  /** Server time of the event (its envelope's timestamp), ms since the epoch. */
  timestamp: number;
  /** When it reached us (performance.now()). */
  receivedAt: number;
}

export interface CancelAttempt {
  sentAt: number;
  answeredAt: number;
  status: number;
  code: string | undefined;
  /** What the cancel raced, for the report. */
  race: string;
}

/** What a stream client (per-task or multiplexed) received for one task, across reconnects. */
export interface ClientView {
  kind: 'task stream' | 'multiplexed stream';
  seqs: number[];
  events: string[];
  /** Why its last connection ended, and what else it noticed. */
  notes: string[];
  complete: boolean;
}

/** One task: what we asked of it and what the service told us. */
export interface TrackedTask {
  id: string;
  /** Set once the create (or retry) answered 201. */
  accepted?: {
    scenario: string;
    request: CreateRequest;
    retryOf: string | null;
    at: number;
    /** The outcome the scenario must reach unless a cancel is accepted: `completed`, `failed:<code>`, `cancelled:<reason>`. */
    expect?: string | undefined;
  };
  /** From the all-tasks stream: task_created seen, then its own events in order. */
  createdSeen: boolean;
  events: SeenEvent[];
  terminal?: SeenEvent;
  removedSeen: boolean;
  cancels: CancelAttempt[];
  /** DELETE answered 204. */
  deleted: boolean;
  /** The snapshot read once the terminal event was seen (an ended task no longer changes). */
  finalSnapshot?: any;
  clients: ClientView[];
}

/**
 * Every task of the run. The all-tasks stream feeds it each event, and it checks at once
 * what can be checked event by event: seq 1, 2, 3… per task, nothing after the terminal
 * event. Waiters learn when a task starts or ends.
 */
export class Ledger {
  readonly tasks = new Map<string, TrackedTask>();
  readonly #violations: Violations;
  readonly #endWaiters = new Map<string, (() => void)[]>();
  readonly #eventWaiters = new Map<string, (() => void)[]>();

  constructor(violations: Violations) {
    this.#violations = violations;
  }

  task(id: string): TrackedTask {
    let task = this.tasks.get(id);
    if (!task) {
      task = { id, createdSeen: false, events: [], removedSeen: false, cancels: [], deleted: false, clients: [] };
      this.tasks.set(id, task);
    }
    return task;
  }

  accept(snapshot: { task_id: string; retry_of: string | null }, scenario: string, request: CreateRequest): TrackedTask {
    const task = this.task(snapshot.task_id);
    if (task.accepted) this.#violations.add('duplicate task id', `${task.id} was answered 201 twice`);
    task.accepted = { scenario, request, retryOf: snapshot.retry_of, at: performance.now() };
    return task;
  }

  get acceptedCount(): number {
    let count = 0;
    for (const task of this.tasks.values()) if (task.accepted) count++;
    return count;
  }

  /** A frame of the all-tasks stream (positions already checked by the caller). */
  record(frame: Frame): void {
    const envelope = frame.data as { task_id?: string; seq?: number; timestamp?: string; data?: unknown };
    if (typeof envelope?.task_id !== 'string') {
      this.#violations.add('bad frame', `all-tasks stream frame ${frame.event} ${JSON.stringify(frame.data).slice(0, 300)}`);
      return;
    }
    const task = this.task(envelope.task_id);
    if (frame.event === 'task_created') {
      if (task.createdSeen) this.#violations.add('duplicate event', `${task.id}: task_created twice`);
      if (task.events.length > 0) this.#violations.add('order', `${task.id}: task_created after its events`);
      task.createdSeen = true;
      return;
    }
    if (frame.event === 'task_removed') {
      task.removedSeen = true;
      return;
    }
    const seen: SeenEvent = {
      seq: envelope.seq ?? NaN,
      event: frame.event,
      data: envelope.data,
      timestamp: Date.parse(envelope.timestamp ?? ''),
      receivedAt: performance.now(),
    };
    if (!task.createdSeen) this.#violations.add('order', `${task.id}: ${frame.event} before task_created`);
    if (task.removedSeen) this.#violations.add('order', `${task.id}: ${frame.event} after task_removed`);
    const expected = (task.events.at(-1)?.seq ?? 0) + 1;
    if (seen.seq !== expected) {
      this.#violations.add(
        seen.seq < expected ? 'duplicate event' : 'gap',
        `${task.id}: all-tasks stream sent seq ${seen.seq} (${frame.event}) where ${expected} was next`,
      );
    }
    if (task.terminal) {
      this.#violations.add('event after terminal', `${task.id}: ${frame.event} (seq ${seen.seq}) after ${task.terminal.event}`);
    }
    task.events.push(seen);
    if (TERMINAL_EVENTS.has(frame.event) && !task.terminal) {
      task.terminal = seen;
      this.#wake(this.#endWaiters, task.id);
    }
    this.#wake(this.#eventWaiters, task.id);
  }

  /** Resolves once the task's terminal event has been seen. */
  ended(id: string): Promise<void> {
    if (this.task(id).terminal) return Promise.resolve();
    return new Promise((resolve) => this.#wait(this.#endWaiters, id, resolve));
  }

  /** Resolves with the first event that satisfies `predicate`, or undefined once the task ended without one. */
  async firstEvent(id: string, predicate: (event: SeenEvent) => boolean): Promise<SeenEvent | undefined> {
    const task = this.task(id);
    for (;;) {
      const found = task.events.find(predicate);
      if (found) return found;
      if (task.terminal) return undefined;
      await new Promise<void>((resolve) => this.#wait(this.#eventWaiters, id, resolve));
    }
  }

  #wait(waiters: Map<string, (() => void)[]>, id: string, wake: () => void): void {
    const list = waiters.get(id);
    if (list) list.push(wake);
    else waiters.set(id, [wake]);
  }

  #wake(waiters: Map<string, (() => void)[]>, id: string): void {
    const list = waiters.get(id);
    if (!list) return;
    waiters.delete(id);
    for (const wake of list) wake();
  }
}

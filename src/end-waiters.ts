import type { Broker, Subscription } from './broker/broker.ts';
import { isTerminal, isTerminalEvent } from './events.ts';
import type { TaskRecord, TaskStore } from './store/task-store.ts';

/** Live events only: the resume point after any seq a task can reach. */
const LIVE = { seq: Number.MAX_SAFE_INTEGER };

/**
 * Long-polls for a task's end. It listens on the broker, not on this process's lifecycle,
 * so a task that ends on another process that shares the broker wakes its waiters here too.
 */
export class EndWaiters {
  readonly #broker: Broker;
  readonly #store: TaskStore;

  constructor({ broker, store }: { broker: Broker; store: TaskStore }) {
    this.#broker = broker;
    this.#store = store;
  }

  /**
   * Resolves with the task once it has ended, or as it is after `timeoutMs`, or when
   * `signal` aborts (the client went away). Resolves undefined if the task is removed.
   */
  async wait(record: TaskRecord, timeoutMs: number, signal?: AbortSignal): Promise<TaskRecord | undefined> {
    if (isTerminal(record.status)) return record;
    const taskId = record.task_id;
    let settle!: (how: 'ended' | 'removed' | 'now') => void;
    const settled = new Promise<'ended' | 'removed' | 'now'>((resolve) => (settle = resolve));
    // The store ends a task before the broker logs its terminal event, so once that event
    // is seen, the store holds the final record.
    const subscription: Subscription & { ended: boolean } = await this.#broker.subscribe(taskId, LIVE, {
      deliver: (logged) => isTerminalEvent(logged) && settle('ended'),
      removed: () => settle('removed'),
    });
    if (subscription.ended) settle('ended');
    const onAbort = () => settle('now');
    const timer = setTimeout(onAbort, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    try {
      const how = await settled;
      return how === 'removed' ? undefined : await this.#store.get(taskId);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      subscription.unsubscribe();
    }
  }
}

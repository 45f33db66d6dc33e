export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ReaperOptions {
  /** Called for each task whose time is up; false if it was already gone. */
  evict: (taskId: string) => boolean;
  clock?: Clock;
}

/**
 * Evicts ended tasks when their retention runs out. Retention is the same for every task,
 * so expiry order is finish order: a FIFO with one timer set for its head gives exact
 * eviction times without sweeping.
 */
export class Reaper {
  readonly #evict: (taskId: string) => boolean;
  readonly #clock: Clock;
  /** Sorted by expiresAt, oldest from #head on. */
  #due: { taskId: string; expiresAt: number }[] = [];
  #head = 0;
  #timer: unknown = undefined;
  #timerAt = Infinity;
  #closed = false;
  #lastRunAt: number | null = null;
  #evictedTotal = 0;

  constructor({ evict, clock = systemClock }: ReaperOptions) {
    this.#evict = evict;
    this.#clock = clock;
  }

  /** Evicts `taskId` at `expiresAt` (epoch ms). */
  schedule(taskId: string, expiresAt: number): void {
    if (this.#closed) return;
    // Calls come in finish order; if the wall clock stepped back, keep the FIFO sorted.
    const last = this.#due[this.#due.length - 1];
    this.#due.push({ taskId, expiresAt: last ? Math.max(expiresAt, last.expiresAt) : expiresAt });
    this.#arm();
  }

  /** Evicts everything that is due now; returns how many. */
  sweep(): number {
    const now = this.#clock.now();
    this.#lastRunAt = now;
    let evicted = 0;
    while (this.#head < this.#due.length && this.#due[this.#head]!.expiresAt <= now) {
      const { taskId } = this.#due[this.#head++]!;
      if (this.#evict(taskId)) evicted++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#due.length) {
      this.#due = this.#due.slice(this.#head);
      this.#head = 0;
    }
    this.#evictedTotal += evicted;
    return evicted;
  }

  /**
   * Evicts the ended task due first, ahead of its time, to make room; false if no ended
   * task is left. The timer need not move: when it fires, it evicts whatever is due then.
   */
  evictOldest(): boolean {
    while (this.#head < this.#due.length) {
      const { taskId } = this.#due[this.#head++]!;
      if (this.#evict(taskId)) {
        this.#evictedTotal++;
        return true;
      }
    }
    return false;
  }

  /** When it last ran (epoch ms, or null) and how many tasks it has evicted in all. */
  get status(): { lastRunAt: number | null; evictedTotal: number; pending: number } {
    return { lastRunAt: this.#lastRunAt, evictedTotal: this.#evictedTotal, pending: this.pending };
  }

  get pending(): number {
    return this.#due.length - this.#head;
  }

  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    const next = this.#due[this.#head];
    if (!next || this.#closed || next.expiresAt >= this.#timerAt) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = next.expiresAt;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.sweep();
      this.#arm();
    }, Math.max(0, next.expiresAt - this.#clock.now()));
  }
}

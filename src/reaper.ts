import { systemClock, type Clock } from './clock.ts';

export { systemClock, type Clock };

export interface ReaperOptions {
  /** Evicts one task; false if it was already gone. */
  evict: (taskId: string) => boolean | Promise<boolean>;
  /**
   * Ended tasks whose expiry has passed, from the store: also those this process never
   * scheduled (ended on another process, or before a restart). Read by sweep().
   */
  expired?: (now: number) => Promise<string[]>;
  /** The ended task that expires first, from the store. Read by evictOldest(). */
  oldestEnded?: () => Promise<string | undefined>;
  /**
   * Also sweep this often (ms), for tasks this process did not schedule: with a store shared
   * by several processes, those another one ended (and did not live to evict). 0: never.
   */
  sweepEveryMs?: number;
  clock?: Clock;
}

/**
 * Evicts ended tasks when their retention runs out. Retention is the same for every task,
 * so expiry order is finish order: a FIFO with one timer set for its head gives exact
 * eviction times without sweeping. sweep() also asks the store, which knows the tasks other
 * processes ended.
 */
export class Reaper {
  readonly #evict: (taskId: string) => boolean | Promise<boolean>;
  readonly #expired: ((now: number) => Promise<string[]>) | undefined;
  readonly #oldestEnded: (() => Promise<string | undefined>) | undefined;
  readonly #clock: Clock;
  readonly #sweepEveryMs: number;
  #sweepTimer: unknown = undefined;
  /** Sorted by expiresAt, oldest from #head on. */
  #due: { taskId: string; expiresAt: number }[] = [];
  #head = 0;
  #timer: unknown = undefined;
  #timerAt = Infinity;
  #closed = false;
  #lastRunAt: number | null = null;
  #evictedTotal = 0;

  constructor({ evict, expired, oldestEnded, sweepEveryMs = 0, clock = systemClock }: ReaperOptions) {
    this.#evict = evict;
    this.#expired = expired;
    this.#oldestEnded = oldestEnded;
    this.#clock = clock;
    this.#sweepEveryMs = sweepEveryMs;
    this.#armSweep();
  }

  /** Evicts `taskId` at `expiresAt` (epoch ms). */
  schedule(taskId: string, expiresAt: number): void {
    if (this.#closed) return;
    // Calls come in finish order; if the wall clock stepped back, keep the FIFO sorted.
    const last = this.#due[this.#due.length - 1];
    this.#due.push({ taskId, expiresAt: last ? Math.max(expiresAt, last.expiresAt) : expiresAt });
    this.#arm();
  }

  /** Evicts everything that is due now, scheduled here or known to the store; returns how many. */
  async sweep(): Promise<number> {
    const now = this.#clock.now();
    const evictions = this.#evictDue(now);
    if (this.#expired && !this.#closed) {
      for (const taskId of await this.#expired(now)) evictions.push(this.#count(this.#evict(taskId)));
    }
    let evicted = 0;
    for (const done of evictions) if (await done) evicted++;
    return evicted;
  }

  /**
   * Evicts the ended task due first, ahead of its time, to make room; false if no ended
   * task is left. The timer need not move: when it fires, it evicts whatever is due then.
   */
  async evictOldest(): Promise<boolean> {
    if (this.#oldestEnded) {
      // Another process may evict the same task first: then try the next one.
      for (let tries = 0; tries < 3; tries++) {
        const taskId = await this.#oldestEnded();
        if (taskId === undefined) return false;
        if (await this.#count(this.#evict(taskId))) return true;
      }
      return false;
    }
    while (this.#head < this.#due.length) {
      const { taskId } = this.#due[this.#head++]!;
      if (await this.#count(this.#evict(taskId))) return true;
    }
    return false;
  }

  /** When it last ran (epoch ms, or null) and how many tasks it has evicted in all. */
  get status(): { lastRunAt: number | null; evictedTotal: number; pending: number } {
    return { lastRunAt: this.#lastRunAt, evictedTotal: this.#evictedTotal, pending: this.pending };
  }

  /** How often it sweeps besides evicting each scheduled task on time; 0: never. */
  get sweepEveryMs(): number {
    return this.#sweepEveryMs;
  }

  get pending(): number {
    return this.#due.length - this.#head;
  }

  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  /** The periodic sweep: the next one is set once this one is over, so they never overlap. */
  #armSweep(): void {
    if (this.#sweepEveryMs <= 0 || this.#closed) return;
    this.#sweepTimer = this.#clock.setTimeout(() => {
      void this.sweep()
        .catch(() => 0)
        .finally(() => this.#armSweep());
    }, this.#sweepEveryMs);
  }

  /** Starts evicting every scheduled task due at `now`; each entry settles true if it was evicted. */
  #evictDue(now: number): (boolean | Promise<boolean>)[] {
    this.#lastRunAt = now;
    const evictions: (boolean | Promise<boolean>)[] = [];
    while (this.#head < this.#due.length && this.#due[this.#head]!.expiresAt <= now) {
      evictions.push(this.#count(this.#evict(this.#due[this.#head++]!.taskId)));
    }
    if (this.#head > 1024 && this.#head * 2 > this.#due.length) {
      this.#due = this.#due.slice(this.#head);
      this.#head = 0;
    }
    return evictions;
  }

  /** Counts an eviction once it is known to have happened (at once when it is synchronous). */
  #count(evicted: boolean | Promise<boolean>): boolean | Promise<boolean> {
    if (evicted === true) this.#evictedTotal++;
    if (typeof evicted === 'boolean') return evicted;
    return evicted.then((done) => {
      if (done) this.#evictedTotal++;
      return done;
    });
  }

  #arm(): void {
    const next = this.#due[this.#head];
    if (!next || this.#closed || next.expiresAt >= this.#timerAt) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = next.expiresAt;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#evictDue(this.#clock.now());
      this.#arm();
    }, Math.max(0, next.expiresAt - this.#clock.now()));
  }
}

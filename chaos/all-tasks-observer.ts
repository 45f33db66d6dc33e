import type { Ledger } from './ledger.ts';
import type { Random } from './random.ts';
import { SseSession, type Frame } from './sse-session.ts';
import type { Violations } from './violations.ts';

/**
 * Follows `GET /api/events` (every task) for the whole run, dropping the connection at
 * random moments and resuming after the last id it received, by header or by query. Its
 * ids are service-wide positions that grow by one per event, so across every reconnect
 * each must be exactly the previous one plus one: no duplicate, no gap. Every frame goes
 * to the ledger, which checks each task's own sequence.
 */
export class AllTasksObserver {
  reconnects = 0;
  frames = 0;
  readonly #baseUrl: string;
  readonly #ledger: Ledger;
  readonly #violations: Violations;
  readonly #random: Random;
  #last: number | undefined;
  #session: SseSession | undefined;
  #stopped = false;
  /** The service is shutting down: it ends the stream itself, and that is no fault. */
  #endExpected = false;
  #loop: Promise<void> | undefined;
  readonly #drops: boolean;

  /**
   * `after`: resume from this position (a restarted service's stream must go on from the
   * last event the previous process sent, with no gap and no duplicate).
   */
  constructor(
    baseUrl: string,
    ledger: Ledger,
    violations: Violations,
    random: Random,
    { drops = true, after }: { drops?: boolean; after?: number | undefined } = {},
  ) {
    this.#drops = drops;
    this.#last = after;
    this.#baseUrl = baseUrl;
    this.#ledger = ledger;
    this.#violations = violations;
    this.#random = random;
  }

  /** Connects; resolves once the stream is open, so no later event can be missed. */
  async start(): Promise<void> {
    const first = this.#connect();
    const status = await first.opened;
    if (status !== 200) throw new Error(`GET /api/events answered ${status}`);
    this.#loop = this.#follow(first);
  }

  /** The last position received, to compare with what the service published. */
  get lastPosition(): number | undefined {
    return this.#last;
  }

  /** From now on the service ends the stream (shutdown): wait for that instead of reconnecting. */
  expectEnd(): void {
    this.#endExpected = true;
  }

  /** Resolves once the stream has ended for good (stop(), or the server's end after expectEnd()). */
  async finished(): Promise<void> {
    await this.#loop;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#session?.drop();
    await this.#loop;
  }

  #connect(): SseSession {
    const resume = this.#last === undefined ? undefined : { after: this.#last, by: this.#random.pick(['header', 'query'] as const) };
    // Drop after some frames or some time, whichever comes first.
    let framesLeft = this.#drops ? this.#random.int(1, 600) : Infinity;
    const session = new SseSession(this.#baseUrl, '/api/events', {
      ...(resume ? { resume } : {}),
      onFrame: (frame, current) => {
        this.#onFrame(frame);
        if (--framesLeft <= 0 && this.#last !== undefined) current.drop();
      },
    });
    // Until a first frame gives a position to resume after, a drop would lose events.
    if (this.#drops) {
      const timer = setTimeout(() => this.#last !== undefined && session.drop(), this.#random.int(20, 1500));
      void session.ended.finally(() => clearTimeout(timer));
    }
    this.#session = session;
    return session;
  }

  async #follow(first: SseSession): Promise<void> {
    let session = first;
    for (;;) {
      const end = await session.ended;
      if (this.#stopped || (this.#endExpected && end === 'server')) return;
      if (end !== 'dropped') {
        this.#violations.add(
          'all-tasks stream',
          `ended by itself (${end}, status ${session.status}${session.error ? `, ${session.error}` : ''}) after position ${this.#last}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      this.reconnects++;
      session = this.#connect();
    }
  }

  #onFrame(frame: Frame): void {
    this.frames++;
    if (frame.event === 'resync') {
      this.#violations.add('all-tasks stream', `resync after position ${this.#last}: events were lost to the resume`);
      return;
    }
    if (this.#last !== undefined && frame.id !== this.#last + 1) {
      const duplicate = frame.id <= this.#last;
      this.#violations.add(
        duplicate ? 'duplicate event' : 'gap',
        `all-tasks stream: position ${frame.id} after ${this.#last} (${frame.event} of ${frame.data?.task_id})`,
      );
      if (duplicate) return;
    }
    if (Number.isFinite(frame.id)) this.#last = frame.id;
    this.#ledger.record(frame);
  }
}

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { errors } from '../errors.ts';
import { isTerminalEvent, type NewTaskEvent } from '../events.ts';
import { call, COMMAND_TIMEOUT_MS, reportConnection } from '../redis/connection.ts';
import { RedisKeys } from '../redis/keys.ts';
import type { StreamEvent } from '../stream-events.ts';
import {
  LoggedEvent,
  type Broker,
  type GlobalSubscription,
  type NewTaskCreatedEvent,
  type ResumePoint,
  type Subscriber,
  type TaskSubscription,
} from './broker.ts';
import { ALL_AFTER, PUBLISH } from './redis-broker-scripts.ts';

export interface RedisBrokerOptions {
  /** A command connection (see createRedisConnection). */
  redis: Redis;
  /** Close that connection in close(); otherwise it is the caller's. */
  ownConnection?: boolean;
  prefix: string;
  /** Progress events per task kept for replay (between 1× and 2× this many). */
  progressHistory: number;
  /** Events of all tasks kept for resuming the multiplexed stream (between 1× and 2×, at most 100 more). */
  globalHistory: number;
  /** Bytes of JSON the service-wide stream holds at most (its newest entry always); unbounded by default. */
  globalHistoryBytes?: number;
  /**
   * How long a task's log may outlive its terminal event if no instance ever drops it (all
   * of them gone for good): a safety net, longer than the retention of ended tasks.
   */
  orphanTtlMs: number;
  logger: Logger;
}

interface BrokerCommands {
  taskstreamPublish(...args: string[]): Promise<[number, string]>;
  taskstreamAllAfter(...args: string[]): Promise<[string] | [string, StreamEntry[]]>;
}

type StreamEntry = [id: string, fields: string[]];

/** How long one read of the live stream blocks in Redis before it is issued again. */
const BLOCK_MS = 5000;
/** Entries taken per read of the live stream. */
const READ_COUNT = 1000;
/** Pause before reading again after the live reader failed (Redis away). */
const READ_RETRY_MS = 250;
/**
 * A task's first event waits this long at most for its task_created, which the instance
 * creating the task publishes just after queueing it; past it (that instance died between
 * the two), the event is logged anyway. The mark saying it is on its way lives longer.
 */
const CREATED_WAIT_MS = 2000;
const CREATING_TTL_MS = 3 * CREATED_WAIT_MS;
/** While it waits, it tries again this often, besides when the live reader sees the task_created. */
const CREATED_RETRY_MS = 25;

/**
 * One local subscription. Until its history is read it buffers what arrives live; the
 * buffer is folded into the history, so delivery starts only once the caller has it.
 */
interface Local {
  readonly subscriber: Subscriber;
  /** Live events up to here were handed over (in history or by deliver()). */
  lastPosition: number;
  /** For a task's own stream: events up to this seq were handed over. */
  lastSeq: number;
  buffer: { logged: LoggedEvent; removed: boolean }[] | undefined;
  /** Dropped while its history was read: events were missed, so subscribe() fails. */
  lost?: boolean;
}

const splitAtSeq = (json: string): [string, string] => {
  const at = json.indexOf('"seq":0,') + '"seq":'.length;
  return [json.slice(0, at), json.slice(at + 1)];
};

const positionOf = (id: string) => Number(id.slice(0, id.indexOf('-')));

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** A stream entry as the broker hands it out; the JSON is parsed once per instance. */
function toLogged(json: string, position: number, owner: string | undefined): LoggedEvent {
  return new LoggedEvent(JSON.parse(json) as StreamEvent, json, position, owner ?? null);
}

/**
 * The broker of Redis mode. Each task's events are a Redis Stream whose entry ids are the
 * events' seqs; every event also goes to one service-wide stream whose entry ids are
 * positions. Each instance reads that stream with one blocking connection and fans events
 * out to its local subscribers, so an event published on any instance reaches every
 * instance's streams in the same order.
 */
export class RedisBroker implements Broker {
  readonly #redis: Redis & BrokerCommands;
  readonly #reader: Redis;
  readonly #keys: RedisKeys;
  readonly #logger: Logger;
  readonly #progressHistory: string;
  readonly #globalHistory: string;
  readonly #globalHistoryBytes: string;
  readonly #orphanTtlMs: string;
  readonly #byTask = new Map<string, Set<Local>>();
  readonly #all = new Set<Local>();
  /** Tasks whose first event waits for their task_created → wakes that wait early. */
  readonly #awaitingCreated = new Map<string, () => void>();
  /** The last entry of the service-wide stream handed to local subscribers. */
  #cursor = '0-0';
  #lastPosition: number | undefined;
  #reading: Promise<void> | undefined;
  #closed = false;
  #readerHealthy = false;
  #subscriberCount = 0;

  readonly #ownConnection: boolean;

  constructor({
    redis,
    prefix,
    progressHistory,
    globalHistory,
    globalHistoryBytes = Number.MAX_SAFE_INTEGER,
    orphanTtlMs,
    logger,
    ownConnection = false,
  }: RedisBrokerOptions) {
    this.#ownConnection = ownConnection;
    if (!('taskstreamPublish' in redis)) {
      redis.defineCommand('taskstreamPublish', { numberOfKeys: 0, lua: PUBLISH });
      redis.defineCommand('taskstreamAllAfter', { numberOfKeys: 0, lua: ALL_AFTER, readOnly: true });
    }
    this.#redis = redis as Redis & BrokerCommands;
    // A blocking read holds its connection: the live reader has its own.
    this.#reader = redis.duplicate({ commandTimeout: BLOCK_MS + COMMAND_TIMEOUT_MS, connectionName: `taskstream:${prefix}:events` });
    reportConnection(this.#reader, logger);
    this.#keys = new RedisKeys(prefix);
    this.#logger = logger;
    this.#progressHistory = String(progressHistory);
    this.#globalHistory = String(globalHistory);
    this.#globalHistoryBytes = String(globalHistoryBytes);
    this.#orphanTtlMs = String(orphanTtlMs);
  }

  /** Connects the live reader; events published from now on reach local subscribers. */
  async start(): Promise<void> {
    if (this.#reading) return;
    await this.#reader.connect();
    const last = await call(this.#redis.xrevrange(this.#keys.allEvents, '+', '-', 'COUNT', 1));
    if (last[0]) {
      this.#cursor = last[0][0];
      this.#lastPosition = positionOf(this.#cursor);
    }
    this.#readerHealthy = true;
    this.#reading = this.#read();
  }

  async expectCreated(taskId: string): Promise<void> {
    await call(this.#redis.set(this.#keys.creating(taskId), '1', 'PX', CREATING_TTL_MS));
  }

  /**
   * Numbers a task event (seq per task, position service-wide) and logs it. A task's first
   * event is logged after its task_created if that is on its way (expectCreated): the task
   * was queued on another instance, then started here at once. It waits for it.
   */
  async publish(event: NewTaskEvent | NewTaskCreatedEvent, owner: string | null): Promise<LoggedEvent> {
    const created = event.event_type === 'task_created';
    const { event_type, task_id, timestamp, data } = event;
    const numbered = { event_type, task_id, seq: 0, timestamp, data } as StreamEvent;
    const [head, tail] = splitAtSeq(JSON.stringify(numbered));
    const publish = (evenBeforeCreated: boolean) =>
      call(
        this.#redis.taskstreamPublish(
          this.#keys.prefix,
          task_id,
          created ? 'created' : 'event',
          head,
          tail,
          owner ?? '',
          event_type === 'progress_update' ? '1' : '0',
          this.#progressHistory,
          this.#globalHistory,
          isTerminalEvent(event) ? this.#orphanTtlMs : '',
          this.#globalHistoryBytes,
          evenBeforeCreated ? '1' : '0',
        ),
      );
    let [seq, position] = await publish(false);
    for (const deadline = Date.now() + CREATED_WAIT_MS; seq === -1; ) {
      const late = Date.now() >= deadline;
      if (!late) await this.#createdOrRetry(task_id);
      [seq, position] = await publish(late);
    }
    numbered.seq = seq as never;
    return new LoggedEvent(numbered, head + seq + tail, Number(position), owner);
  }

  /** Resolves when the live reader sees the task's task_created, or after CREATED_RETRY_MS. */
  #createdOrRetry(taskId: string): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, CREATED_RETRY_MS);
      const awaiting = this.#awaitingCreated;
      function wake() {
        clearTimeout(timer);
        if (awaiting.get(taskId) === wake) awaiting.delete(taskId);
        resolve();
      }
      awaiting.set(taskId, wake);
    });
  }

  /** The totals the publish script keeps in `{prefix}:bytes`, over every instance's events. */
  async retainedBytes(): Promise<number> {
    const [task, all] = await call(this.#redis.hmget(`${this.#keys.prefix}:bytes`, 'task_events', 'all_events'));
    return Number(task ?? 0) + Number(all ?? 0);
  }

  /** One task's history after `after`, then its live events, with no gap or duplicate. */
  async subscribe(taskId: string, after: ResumePoint, subscriber: Subscriber): Promise<TaskSubscription> {
    const bySeq = 'seq' in after;
    const local: Local = {
      subscriber,
      lastSeq: bySeq ? after.seq : 0,
      lastPosition: bySeq ? 0 : after.position,
      buffer: [],
    };
    let locals = this.#byTask.get(taskId);
    if (!locals) this.#byTask.set(taskId, (locals = new Set()));
    locals.add(local);
    const unsubscribe = this.#tracked(() => {
      locals.delete(local);
      if (locals.size === 0 && this.#byTask.get(taskId) === locals) this.#byTask.delete(taskId);
    });
    try {
      const key = this.#keys.taskEvents(taskId);
      // Entry ids are seqs: a resume by seq is a range read, by position a filter. The
      // last entry, read in the same step, says whether the terminal event is already had.
      const [[, lastEntries], [, entries]] = (await call(
        this.#redis
          .multi()
          .xrevrange(key, '+', '-', 'COUNT', 1)
          .xrange(key, bySeq ? `(${Math.min(after.seq, Number.MAX_SAFE_INTEGER)}-0` : '-', '+')
          .exec(),
      )) as [[null, StreamEntry[]], [null, StreamEntry[]]];
      // The newest id of this kind of stream: the task's last seq, or the newest position.
      const newest = bySeq
        ? lastEntries[0] ? positionOf(lastEntries[0][0]) : 0
        : Number((await call(this.#redis.taskstreamAllAfter(this.#keys.prefix, '')))[0]);
      const history: LoggedEvent[] = [];
      for (const [, fields] of entries) {
        const logged = toLogged(fieldOf(fields, 'j')!, Number(fieldOf(fields, 'p')), fieldOf(fields, 'o'));
        if (bySeq || logged.position > after.position) history.push(logged);
      }
      let ended = false;
      const last = lastEntries[0];
      // "Live only" (a seq past any real one): what is already logged counts as had, and
      // nothing logged yet means every event to come is new.
      if (bySeq && after.seq >= Number.MAX_SAFE_INTEGER) local.lastSeq = last ? positionOf(last[0]) : 0;
      if (last) {
        const terminal = fieldOf(last[1], 'e') === '1';
        ended = terminal && (bySeq ? positionOf(last[0]) <= after.seq : Number(fieldOf(last[1], 'p')) <= after.position);
      }
      return { history: this.#goLive(local, history, true), ended, newest, unsubscribe };
    } catch (error) {
      unsubscribe();
      throw error;
    }
  }

  /**
   * Every task's events: with `afterPosition`, the service-wide history after it, then
   * live; without, live only. `complete` is false when that history is no longer retained.
   */
  async subscribeAll(afterPosition: number | undefined, subscriber: Subscriber): Promise<GlobalSubscription> {
    const local: Local = { subscriber, lastSeq: 0, lastPosition: afterPosition ?? 0, buffer: [] };
    this.#all.add(local);
    const unsubscribe = this.#tracked(() => this.#all.delete(local));
    try {
      // Read in one step: the newest position and, when resuming, what followed the point.
      const reply = await call(
        this.#redis.taskstreamAllAfter(
          this.#keys.prefix,
          afterPosition !== undefined && Number.isSafeInteger(afterPosition) ? String(afterPosition) : '',
        ),
      );
      const newest = Number(reply[0]);
      let history: LoggedEvent[] = [];
      let complete = true;
      if (afterPosition === undefined) {
        // Live only: what is already logged (even if not yet read here) counts as had.
        local.lastPosition = newest;
      } else {
        complete = reply.length === 2;
        if (reply.length === 2) {
          history = reply[1].map(([id, fields]) => toLogged(fieldOf(fields, 'j')!, positionOf(id), fieldOf(fields, 'o')));
        }
      }
      return { history: this.#goLive(local, history, false), complete, newest, unsubscribe };
    } catch (error) {
      unsubscribe();
      throw error;
    }
  }

  /** Deletes a task's log and publishes its task_removed, which reaches its subscribers. */
  async drop(taskId: string, reason: 'deleted' | 'evicted', owner: string | null): Promise<void> {
    const removed: StreamEvent = {
      event_type: 'task_removed',
      task_id: taskId,
      seq: 0,
      timestamp: new Date().toISOString(),
      data: { reason },
    };
    const [head, tail] = splitAtSeq(JSON.stringify(removed));
    await call(
      this.#redis.taskstreamPublish(
        this.#keys.prefix,
        taskId,
        'removed',
        head,
        tail,
        owner ?? '',
        '0',
        this.#progressHistory,
        this.#globalHistory,
        '',
        this.#globalHistoryBytes,
      ),
    );
  }

  /** Whether the live reader is reading (false while Redis is away). */
  get reading(): boolean {
    return this.#readerHealthy;
  }

  /** Open subscriptions on this instance. */
  get subscriberCount(): number {
    return this.#subscriberCount;
  }

  /** Stops the live reader. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.disconnect();
    await this.#reading;
    this.#byTask.clear();
    this.#all.clear();
    if (this.#ownConnection && this.#redis.status !== 'end') {
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    }
  }

  /**
   * Folds what arrived live while the history was read into it (skipping what the history
   * already holds), and delivers from now on. A task_removed that arrived meanwhile goes to
   * removed() at once: subscribers buffer calls made before subscribe() resolves.
   */
  #goLive(local: Local, history: LoggedEvent[], ownStream: boolean): LoggedEvent[] {
    if (local.lost) throw errors.backendUnavailable();
    const last = history[history.length - 1];
    if (last) {
      local.lastPosition = last.position;
      if (ownStream) local.lastSeq = last.seq;
    }
    const buffered = local.buffer!;
    local.buffer = undefined;
    for (const { logged, removed } of buffered) {
      if (removed) this.#hand(local, logged, true, ownStream);
      else if (this.#accepts(local, logged, ownStream)) history.push(logged);
    }
    return history;
  }

  /** An idempotent unsubscribe that keeps subscriberCount. */
  #tracked(remove: () => void): () => void {
    this.#subscriberCount++;
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.#subscriberCount--;
      remove();
    };
  }

  /** Whether `logged` is new to this subscription; if so, it counts as handed over. */
  #accepts(local: Local, logged: LoggedEvent, ownStream: boolean): boolean {
    if (logged.position <= local.lastPosition) return false;
    if (ownStream && logged.seq !== 0 && logged.seq <= local.lastSeq) return false;
    local.lastPosition = logged.position;
    if (ownStream && logged.seq !== 0) local.lastSeq = logged.seq;
    return true;
  }

  #hand(local: Local, logged: LoggedEvent, removed: boolean, ownStream: boolean): void {
    if (local.buffer) {
      local.buffer.push({ logged, removed });
      return;
    }
    if (removed) {
      if (logged.position > local.lastPosition) local.subscriber.removed(logged);
      return;
    }
    if (this.#accepts(local, logged, ownStream)) local.subscriber.deliver(logged);
  }

  /** Reads the service-wide stream for as long as the broker is open. */
  async #read(): Promise<void> {
    let failed = false;
    while (!this.#closed) {
      let reply: [string, StreamEntry[]][] | null;
      try {
        reply = (await this.#reader.xread(
          'COUNT',
          READ_COUNT,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.#keys.allEvents,
          this.#cursor,
        )) as [string, StreamEntry[]][] | null;
        failed = false;
        this.#readerHealthy = true;
      } catch (error) {
        this.#readerHealthy = false;
        if (this.#closed) return;
        if (!failed) this.#logger.warn({ err: error }, 'event stream reader lost Redis; open streams end');
        failed = true;
        // Events may be missed while Redis is away: every local stream ends, and its
        // client resumes with Last-Event-ID once Redis is back.
        this.#loseAll();
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        continue;
      }
      for (const [id, fields] of reply?.[0]?.[1] ?? []) this.#dispatch(id, fields);
    }
  }

  #dispatch(id: string, fields: string[]): void {
    const position = positionOf(id);
    this.#cursor = id;
    if (this.#lastPosition !== undefined && position !== this.#lastPosition + 1) {
      // Positions go up by one: a jump means this reader fell behind the retained log (or
      // Redis lost it), so local streams may have missed events.
      this.#logger.warn({ expected: this.#lastPosition + 1, got: position }, 'event stream gap; open streams end');
      this.#loseAll();
    }
    this.#lastPosition = position;
    const taskId = fieldOf(fields, 't')!;
    // An entry of a task whose first event waits: its task_created, most likely. That
    // publish tries again now, and its script decides.
    this.#awaitingCreated.get(taskId)?.();
    const locals = this.#byTask.get(taskId);
    if (!locals && this.#all.size === 0) return;
    const logged = toLogged(fieldOf(fields, 'j')!, position, fieldOf(fields, 'o'));
    const removed = logged.event_type === 'task_removed';
    // task_created is the all-tasks stream's alone, as in the in-process broker: a task's own
    // stream that opened between the create and this read must not get it (its seq is 0).
    if (locals && logged.event_type !== 'task_created') {
      for (const local of [...locals]) this.#hand(local, logged, removed, true);
    }
    for (const local of [...this.#all]) this.#hand(local, logged, false, false);
  }

  /**
   * Tells every local subscription that can end (it has lost()) that it may have missed
   * events, and forgets it. One that cannot end stays, and carries on with what comes next.
   */
  #loseAll(): void {
    const lose = (locals: Set<Local>) => {
      for (const local of [...locals]) {
        if (!local.buffer && !local.subscriber.lost) continue;
        locals.delete(local);
        if (local.buffer) local.lost = true;
        else local.subscriber.lost!();
      }
    };
    lose(this.#all);
    for (const [taskId, locals] of [...this.#byTask]) {
      lose(locals);
      if (locals.size === 0) this.#byTask.delete(taskId);
    }
  }
}

import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Queue, Relay, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { errors } from '../errors.ts';
import type { CancelReason } from '../events.ts';
import type {
  ExecutionOutcome,
  ExecutionRequest,
  Executor,
  ExecutorEventMap,
  ExecutorStats,
  SubmitOptions,
} from './executor.ts';
import { connectRedis, createRedisConnection, reportConnection, toAppError } from '../redis/connection.ts';
import { PiscinaRunner, type PiscinaRunnerOptions, type RunListener } from './piscina-runner.ts';

/** The runner's settings (threads, grace, heap, logger), plus the shared queue's. */
export interface BullmqExecutorOptions extends Omit<PiscinaRunnerOptions, 'clock' | 'onFree'> {
  /** The Redis every instance of the service shares (REDIS_URL). */
  redisUrl: string;
  /** Key prefix of the service (REDIS_PREFIX); this executor's keys are under `{prefix}:bullmq`. */
  prefix: string;
  /** Tasks waiting in the whole service's queue before submit refuses. */
  maxQueue: number;
  /**
   * Bound on the time between an instance dying mid-task and another one reporting the task
   * `worker_lost`. BullMQ's lock on a running job lasts half of it; stalled checks run every
   * sixth of it.
   */
  workerLostAfterMs: number;
}

/** What a BullMQ job carries: the execution request, as is. */
type JobData = ExecutionRequest;

/** A cancel on its way to whichever instance runs the task. */
interface CancelMessage {
  taskId: string;
  reason: CancelReason;
}

const QUEUE_NAME = 'tasks';
/** Where this executor's keys live under the service's prefix. */
const baseKey = (prefix: string) => `${prefix}:bullmq`;
const CANCEL_TOPIC = 'tasks.cancel';
/** Our priority is -1000…1000, higher first; BullMQ's is 1…2^21, lower first. */
const toBullmqPriority = (priority: number) => 1001 - priority;
/**
 * How long a cancel for a task not running here is remembered, in case this instance has
 * just taken the job and not started it yet.
 */
const EARLY_CANCEL_TTL_MS = 60_000;
/** How long close() waits on each of its steps (they need Redis) before moving on. */
const CLOSE_STEP_MS = 2000;

/**
 * Runs tasks from one BullMQ queue that every instance with the same Redis and prefix
 * shares: each instance's Worker takes up to `maxWorkers` jobs at once and runs them on its
 * own Piscina pool. Retries are the service's: a retry is a delayed job. Cancels reach the
 * running instance through BullMQ's Relay. An instance that dies mid-task loses its job
 * locks; another instance's stalled check finds the job and reports it `worker_lost`.
 *
 * Invariants: a job's id is its task id, so a task has at most one job; jobs are removed
 * when they end, so the service may queue the same task again (its next attempt) as soon as
 * `finished` is emitted.
 */
export class BullmqExecutor extends EventEmitter<ExecutorEventMap> implements Executor {
  readonly #options: BullmqExecutorOptions;
  readonly #logger: Logger;
  /** Fails fast while Redis is away: callers answer 503 instead of waiting. */
  readonly #commands: Redis;
  /** Waits for Redis to come back: what the worker and the relay need. */
  readonly #blocking: Redis;
  readonly #queue: Queue<JobData, ExecutionOutcome>;
  readonly #worker: Worker<JobData, ExecutionOutcome>;
  readonly #relay: Relay;
  readonly #runner: PiscinaRunner;
  readonly #instanceId = randomUUID();
  readonly #keys: { instances: string; lost: (taskId: string, attempt: number) => string };
  readonly #lockDurationMs: number;
  /** Tasks running here, with when their lock was last known to be renewed. */
  readonly #running = new Map<string, { renewedAt: number }>();
  /** Cancels that arrived for tasks not (yet) running here: task id → reason and expiry. */
  readonly #earlyCancels = new Map<string, { reason: CancelReason; until: number }>();
  readonly #timers: NodeJS.Timeout[] = [];
  /** Tasks started here whose outcome is not reported yet (see held()). */
  readonly #held = new Set<string>();
  #closing: Promise<void> | undefined;

  private constructor(options: BullmqExecutorOptions, connections: { commands: Redis; blocking: Redis }) {
    super();
    this.#options = options;
    this.#logger = options.logger;
    const base = baseKey(options.prefix);
    this.#keys = {
      instances: `${base}:instances`,
      lost: (taskId, attempt) => `${base}:lost:${taskId}:${attempt}`,
    };
    this.#commands = connections.commands;
    this.#blocking = connections.blocking;
    this.#lockDurationMs = Math.max(1000, Math.floor(options.workerLostAfterMs / 2));
    this.#runner = new PiscinaRunner(options);
    this.#queue = new Queue<JobData, ExecutionOutcome>(QUEUE_NAME, {
      connection: this.#commands,
      prefix: base,
      // Nothing reads BullMQ's own event stream (the broker carries task events): keep it short.
      streams: { events: { maxLen: 100 } },
    });
    this.#worker = new Worker<JobData, ExecutionOutcome>(QUEUE_NAME, (job, _token, signal) => this.#process(job, signal), {
      connection: this.#blocking,
      prefix: base,
      concurrency: options.maxWorkers,
      autorun: false,
      lockDuration: this.#lockDurationMs,
      stalledInterval: Math.max(250, Math.floor(options.workerLostAfterMs / 6)),
      // A job found stalled is never run again by BullMQ: it fails (deferred), and the
      // service decides whether the task gets another attempt.
      maxStalledCount: 0,
    });
    this.#relay = new Relay({ connection: this.#blocking, prefix: base, namespace: 'executor', name: 'taskstream' });
    for (const emitter of [this.#queue, this.#worker, this.#relay] as EventEmitter[]) {
      emitter.on('error', (error: unknown) => this.#logger.warn({ err: error }, 'bullmq error'));
    }
    this.#worker.on('completed', (job, outcome) => this.#onCompleted(job, outcome));
    this.#worker.on('failed', (job, error) => void this.#onFailed(job, error));
    this.#worker.on('stalled', (jobId) => void this.#onStalled(jobId));
    this.#worker.on('locksRenewed', ({ jobIds }) => {
      const now = Date.now();
      for (const jobId of jobIds) {
        const running = this.#running.get(jobId);
        if (running) running.renewedAt = now;
      }
    });
    this.#worker.on('lockRenewalFailed', (jobIds) => {
      for (const jobId of jobIds) this.#runner.stop(jobId, { kind: 'lost' });
    });
  }

  /** Connects to Redis and starts taking jobs. Rejects if Redis cannot be reached. */
  static async start(options: BullmqExecutorOptions): Promise<BullmqExecutor> {
    const base = baseKey(options.prefix);
    const commands = createRedisConnection(options.redisUrl, { connectionName: `${base}:commands` }, options.logger);
    // BullMQ's workers wait for Redis to come back rather than fail their blocking reads.
    const blocking = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: `${base}:worker` });
    reportConnection(blocking, options.logger);
    try {
      await Promise.all([connectRedis(commands), connectRedis(blocking)]);
    } catch (error) {
      commands.disconnect();
      blocking.disconnect();
      throw error;
    }
    const executor = new BullmqExecutor(options, { commands, blocking });
    try {
      await Promise.all([executor.#queue.waitUntilReady(), executor.#worker.waitUntilReady()]);
      await executor.#relay.subscribe<CancelMessage>(CANCEL_TOPIC, ({ data }) => executor.#onCancelMessage(data));
      await executor.#heartbeat();
    } catch (error) {
      await executor.close();
      throw error;
    }
    void executor.#worker.run().catch((error: unknown) => executor.#logger.error({ err: error }, 'bullmq worker stopped'));
    const heartbeatMs = Math.max(200, Math.floor(options.workerLostAfterMs / 6));
    executor.#every(heartbeatMs, () => executor.#heartbeat());
    executor.#every(Math.max(100, Math.floor(executor.#lockDurationMs / 8)), () => executor.#watchLocks());
    return executor;
  }

  async submit(request: ExecutionRequest, { force = false, delayMs = 0 }: SubmitOptions = {}): Promise<void> {
    if (this.#closing) throw errors.shuttingDown();
    await backend(async () => {
      if (!force && (await this.#waiting()) >= this.#options.maxQueue) throw errors.queueFull(this.#options.maxQueue);
      await this.#queue.add(request.type, request, {
        jobId: request.taskId,
        priority: toBullmqPriority(request.priority),
        ...(delayMs > 0 ? { delay: delayMs } : {}),
        attempts: 1,
        // Gone when it ends, so the task's next attempt can use the same id.
        removeOnComplete: true,
        removeOnFail: true,
      });
    });
  }

  async cancel(taskId: string, reason: CancelReason): Promise<boolean> {
    return backend(async () => {
      const state = await this.#queue.getJobState(taskId);
      if (state === 'unknown' || state === 'completed' || state === 'failed') return false;
      // Removal fails only while a live worker holds the job's lock, i.e. it is running.
      if ((await this.#queue.remove(taskId)) === 1) {
        this.emit('finished', taskId, { status: 'cancelled', reason });
        return true;
      }
      const message: CancelMessage = { taskId, reason };
      await this.#relay.publish(CANCEL_TOPIC, message);
      return true;
    });
  }

  async stats(): Promise<ExecutorStats> {
    return backend(async () => {
      const [counts, paused, maxWorkers] = await Promise.all([
        this.#queue.getJobCounts('wait', 'prioritized', 'active'),
        this.#queue.isPaused(),
        this.#liveWorkers(),
      ]);
      return {
        queued: (counts.wait ?? 0) + (counts.prioritized ?? 0),
        running: counts.active ?? 0,
        maxQueue: this.#options.maxQueue,
        maxWorkers,
        paused,
      };
    });
  }

  pause(): Promise<void> {
    return backend(() => this.#queue.pause());
  }

  resume(): Promise<void> {
    return backend(() => this.#queue.resume());
  }

  /**
   * Tasks this instance must see ended before it stops: the ones it runs, until their
   * outcome is stored in Redis and reported. Queued tasks wait in the shared queue for any
   * instance, so none is listed as waiting.
   */
  held(): Promise<{ waiting: string[]; running: string[] }> {
    return Promise.resolve({ waiting: [], running: [...this.#held] });
  }

  /** Whether Redis answers this executor's commands now. */
  get reachable(): boolean {
    return this.#commands.status === 'ready';
  }

  async stopStarting(): Promise<void> {
    await this.#worker.pause(true).catch((error: unknown) => this.#logger.warn({ err: error }, 'bullmq worker pause'));
  }

  /**
   * Stops taking jobs and ends this instance's threads. Jobs still running here are left to
   * the other instances' stalled checks, as if this instance had died. Idempotent.
   */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      for (const timer of this.#timers) clearInterval(timer);
      const steps: [string, () => Promise<unknown>][] = [
        ['worker', () => this.#worker.close(true)],
        ['threads', () => this.#runner.close()],
        ['relay', () => this.#relay.close()],
        ['instance', () => this.#commands.zrem(this.#keys.instances, this.#member)],
        ['queue', () => this.#queue.close()],
      ];
      for (const [name, step] of steps) {
        // Each step talks to Redis; while it is away, give up on it after a while.
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_STEP_MS)));
        await Promise.race([step(), late])
          .catch((error: unknown) => this.#logger.debug({ err: error, step: name }, 'executor close'))
          .finally(() => clearTimeout(timer));
      }
      this.#commands.disconnect();
      this.#blocking.disconnect();
    })());
  }

  /** The BullMQ processor: runs the job's task on this instance's pool. Never throws. */
  #process(job: Job<JobData>, signal: AbortSignal | undefined): Promise<ExecutionOutcome> {
    const request = job.data;
    const { taskId } = request;
    return new Promise((resolve) => {
      const listener: RunListener = {
        progress: (id, report) => this.emit('progress', id, report),
        finished: (_id, outcome) => {
          this.#running.delete(taskId);
          // Taken from this instance: the instance that reports it lost reports its end.
          if (outcome.status === 'failed' && outcome.error.code === 'worker_lost') this.#held.delete(taskId);
          resolve(outcome);
        },
      };
      this.#running.set(taskId, { renewedAt: Date.now() });
      this.#held.add(taskId);
      this.emit('started', taskId, request.attempt);
      this.#runner.run(request, listener);
      // worker.cancelJob (from a relayed cancel) aborts this signal.
      signal?.addEventListener('abort', () => this.#runner.stop(taskId, { kind: 'cancel', reason: signal.reason as CancelReason }), {
        once: true,
      });
      const early = this.#earlyCancels.get(taskId);
      if (early) {
        this.#earlyCancels.delete(taskId);
        if (early.until > Date.now()) this.#runner.stop(taskId, { kind: 'cancel', reason: early.reason });
      }
    });
  }

  /** The job is gone from Redis (removed on completion): the outcome is final. */
  #onCompleted(job: Job<JobData>, outcome: ExecutionOutcome): void {
    this.#held.delete(job.data.taskId);
    this.emit('finished', job.data.taskId, outcome);
  }

  /**
   * A job failed without reaching the processor's end: BullMQ found it stalled (its instance
   * died) and failed it when this worker picked it up.
   */
  async #onFailed(job: Job<JobData> | undefined, error: Error): Promise<void> {
    if (!job) return;
    this.#held.delete(job.data.taskId);
    if (job.deferredFailure) {
      await this.#reportLost(job.data);
      return;
    }
    this.#logger.error({ err: error, taskId: job.data.taskId }, 'bullmq job failed');
    this.emit('finished', job.data.taskId, {
      status: 'failed',
      error: { code: 'worker_crashed', message: 'The task could not be run' },
    });
  }

  /**
   * This instance's stalled check found a job whose instance stopped renewing its lock, and
   * moved it back to wait. Take it out before any worker picks it up; if one already did,
   * that worker fails it (see #onFailed).
   */
  async #onStalled(jobId: string): Promise<void> {
    try {
      const job = await this.#queue.getJob(jobId);
      if (!job || (await this.#queue.remove(jobId)) !== 1) return;
      await this.#reportLost(job.data);
    } catch (error) {
      this.#logger.warn({ err: error, taskId: jobId }, 'could not handle a stalled task');
    }
  }

  /** Emits `worker_lost` once per attempt, whichever of #onStalled and #onFailed gets here first. */
  async #reportLost(request: ExecutionRequest): Promise<void> {
    const claimed = await this.#commands.set(this.#keys.lost(request.taskId, request.attempt), this.#instanceId, 'PX', 60_000, 'NX');
    if (claimed !== 'OK') return;
    this.#logger.warn({ taskId: request.taskId, attempt: request.attempt }, 'task lost with its instance');
    this.emit('finished', request.taskId, {
      status: 'failed',
      error: { code: 'worker_lost', message: 'The instance running the task stopped responding' },
    });
  }

  #onCancelMessage({ taskId, reason }: CancelMessage): void {
    if (this.#worker.cancelJob(taskId, reason)) return;
    if (this.#runner.stop(taskId, { kind: 'cancel', reason })) return;
    // Not running here, or not yet: if this instance is about to start it, cancel it then.
    const now = Date.now();
    for (const [id, early] of this.#earlyCancels) if (early.until <= now) this.#earlyCancels.delete(id);
    this.#earlyCancels.set(taskId, { reason, until: now + EARLY_CANCEL_TTL_MS });
  }

  /**
   * A task whose lock could not be renewed for most of its duration is no longer this
   * instance's: another one may already have reported it lost. End its thread now, so it
   * never runs in two places at once.
   */
  #watchLocks(): void {
    const deadline = Date.now() - (this.#lockDurationMs * 3) / 4;
    for (const [taskId, running] of this.#running) {
      if (running.renewedAt < deadline) this.#runner.stop(taskId, { kind: 'lost' });
    }
  }

  /** Tasks waiting for a worker in the whole queue, less those free workers take at once. */
  async #waiting(): Promise<number> {
    const waiting = await this.#queue.getJobCountByTypes('wait', 'prioritized');
    if (waiting < this.#options.maxQueue) return waiting;
    const [active, paused, workers] = await Promise.all([
      this.#queue.getJobCountByTypes('active'),
      this.#queue.isPaused(),
      this.#liveWorkers(),
    ]);
    return paused ? waiting : waiting - Math.max(0, workers - active);
  }

  get #member(): string {
    return `${this.#instanceId}:${this.#options.maxWorkers}`;
  }

  /** Announces this instance's workers until a little after its next heartbeat. */
  async #heartbeat(): Promise<void> {
    const now = Date.now();
    const ttl = this.#options.workerLostAfterMs;
    await this.#commands
      .multi()
      .zadd(this.#keys.instances, now + ttl, this.#member)
      .zremrangebyscore(this.#keys.instances, '-inf', now)
      .pexpire(this.#keys.instances, ttl)
      .exec();
  }

  /** Worker threads of every instance whose heartbeat is current. */
  async #liveWorkers(): Promise<number> {
    const members = await this.#commands.zrangebyscore(this.#keys.instances, Date.now(), '+inf');
    return members.reduce((sum, member) => sum + Number(member.slice(member.lastIndexOf(':') + 1)), 0);
  }

  #every(ms: number, run: () => unknown): void {
    const timer = setInterval(() => {
      Promise.resolve()
        .then(run)
        .catch((error: unknown) => this.#logger.debug({ err: error }, 'executor timer'));
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

/** Runs a Redis call; a failure to reach Redis becomes AppError `backend_unavailable`. */
async function backend<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw toAppError(error);
  }
}

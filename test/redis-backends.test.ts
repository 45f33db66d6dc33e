import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { uuidv7 } from 'uuidv7';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LoggedEvent, Subscriber } from '../src/broker/broker.ts';
import { RedisBroker } from '../src/broker/redis-broker.ts';
import { AppError } from '../src/errors.ts';
import type { NewTaskEvent } from '../src/events.ts';
import { RedisTaskStore } from '../src/store/redis-task-store.ts';
import type { TaskRecord } from '../src/task-record.ts';
import { deleteKeys, keysOf, openRedis, RedisProxy, testPrefix } from './helpers/redis.ts';
import { until, withTimeout } from './helpers/timeout.ts';

const logger = pino({ level: 'silent' });

function newRecord(owner: string | null = null, changes: Partial<TaskRecord> = {}): TaskRecord {
  return {
    task_id: uuidv7(),
    type: 'sample',
    status: 'queued',
    input: { steps: 1 },
    progress: { value: null, text: null, step: null, total_steps: null, eta_ms: null },
    result: null,
    error: null,
    created_at: new Date().toISOString(),
    started_at: null,
    finished_at: null,
    expires_at: null,
    timeout_ms: 1000,
    priority: 0,
    attempt: 0,
    max_attempts: 1,
    retry_backoff_ms: 1000,
    labels: {},
    retry_of: null,
    owner,
    ...changes,
  };
}

const event = (taskId: string, event_type: NewTaskEvent['event_type'], data: unknown) =>
  ({ event_type, task_id: taskId, timestamp: new Date().toISOString(), data }) as NewTaskEvent;
const progress = (taskId: string, value: number) =>
  event(taskId, 'progress_update', { value, text: null, step: null, total_steps: null, eta_ms: null });

/** A subscriber that records what it is told. */
function recorder() {
  const delivered: LoggedEvent[] = [];
  const removed: LoggedEvent[] = [];
  let lost = 0;
  const subscriber: Subscriber = {
    deliver: (logged) => delivered.push(logged),
    removed: (logged) => removed.push(logged),
    lost: () => lost++,
  };
  return { subscriber, delivered, removed, lost: () => lost };
}

/**
 * Two instances' worth of Redis backends (each its own connections) on one prefix, so
 * what one instance does is seen through the other's connections.
 */
describe('Redis store and broker shared by two instances', () => {
  let prefix: string;
  let connections: Redis[];
  let brokers: RedisBroker[];

  beforeEach(async () => {
    prefix = testPrefix('backends');
    connections = [await openRedis(), await openRedis()];
    brokers = [];
  });

  afterEach(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
    await deleteKeys(connections[0]!, prefix);
    for (const redis of connections) redis.disconnect();
  });

  const stores = () => connections.map((redis) => new RedisTaskStore({ redis, prefix }));
  async function startBrokers(options: { progressHistory?: number; globalHistory?: number } = {}) {
    brokers = connections.map(
      (redis) =>
        new RedisBroker({
          redis,
          prefix,
          progressHistory: options.progressHistory ?? 100,
          globalHistory: options.globalHistory ?? 10_000,
          orphanTtlMs: 60_000,
          logger,
        }),
    );
    await Promise.all(brokers.map((broker) => broker.start()));
    return brokers as [RedisBroker, RedisBroker];
  }

  it('creates one task for an Idempotency-Key sent to two instances at once', async () => {
    const [a, b] = stores() as [RedisTaskStore, RedisTaskStore];
    for (let round = 0; round < 20; round++) {
      const claim = { key: `key-${round}`, fingerprint: 'same-body' };
      const outcomes = await Promise.all([a.create(newRecord('alice'), claim), b.create(newRecord('alice'), claim)]);
      const kinds = outcomes.map((outcome) => outcome.kind).sort();
      expect(kinds, `round ${round}`).toEqual(['created', 'existing']);
      const created = outcomes.find((outcome) => outcome.kind === 'created')!;
      const existing = outcomes.find((outcome) => outcome.kind === 'existing')!;
      expect('record' in existing && existing.record.task_id).toBe('record' in created && created.record.task_id);
    }
    expect(await a.size()).toBe(20);
    // The key is per owner, and another body under it is refused.
    expect((await b.create(newRecord('bob'), { key: 'key-0', fingerprint: 'same-body' })).kind).toBe('created');
    expect((await b.create(newRecord('alice'), { key: 'key-0', fingerprint: 'other' })).kind).toBe('key_reused');
  });

  it('lets exactly one of two instances win a transition, and keeps the counts in step', async () => {
    const [a, b] = stores() as [RedisTaskStore, RedisTaskStore];
    const records = Array.from({ length: 30 }, () => newRecord('alice'));
    for (const record of records) await a.create(record);
    const outcomes = await Promise.all(
      records.flatMap((record) => [
        a.transition(record.task_id, ['queued', 'running'], { status: 'cancelled', expires_at: new Date().toISOString() }),
        b.transition(record.task_id, ['queued', 'running'], { status: 'completed', expires_at: new Date().toISOString() }),
      ]),
    );
    expect(outcomes.filter((outcome) => outcome.applied)).toHaveLength(30);
    const counts = await b.counts();
    expect(counts.cancelled + counts.completed).toBe(30);
    expect(counts.queued).toBe(0);
    expect(await b.counts('alice')).toEqual(counts);
    const listed = await a.list({ status: 'cancelled', limit: 100 });
    expect(listed.tasks).toHaveLength(counts.cancelled);
    expect(listed.tasks.every((task) => task.status === 'cancelled')).toBe(true);
  });

  it('numbers events on either instance in one sequence and streams them to the other', async () => {
    const [a, b] = await startBrokers();
    const taskId = uuidv7();
    const early = await a.publish(event(taskId, 'task_started', { attempt: 1, max_attempts: 1 }), 'alice');
    const onB = recorder();
    const subscription = await b.subscribe(taskId, { seq: 0 }, onB.subscriber);
    expect(subscription.history.map((logged) => logged.event.seq)).toEqual([1]);
    const published = [early];
    for (let i = 1; i <= 5; i++) published.push(await (i % 2 ? b : a).publish(progress(taskId, i / 10), 'alice'));
    published.push(await a.publish(event(taskId, 'task_completed', { result: 42 }), 'alice'));
    expect(published.map((logged) => logged.event.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const positions = published.map((logged) => logged.position);
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    await until(() => onB.delivered.length === 6, 'the live events on the other instance');
    expect(onB.delivered.map((logged) => logged.json)).toEqual(published.slice(1).map((logged) => logged.json));
    expect(onB.delivered.at(-1)!.owner).toBe('alice');

    // Resuming on either instance: after a seq, and after a position.
    const resumed = await a.subscribe(taskId, { seq: 4 }, recorder().subscriber);
    expect(resumed.history.map((logged) => logged.event.seq)).toEqual([5, 6, 7]);
    expect(resumed.ended).toBe(false);
    expect((await b.subscribe(taskId, { seq: 7 }, recorder().subscriber)).ended).toBe(true);
    const byPosition = await b.subscribe(taskId, { position: positions[2]! }, recorder().subscriber);
    expect(byPosition.history.map((logged) => logged.event.seq)).toEqual([4, 5, 6, 7]);
  });

  it('gives a subscriber opening while events flow every event once, in order', async () => {
    const [a, b] = await startBrokers();
    const taskId = uuidv7();
    let stop = false;
    const publishing = (async () => {
      let i = 0;
      while (!stop) await a.publish(progress(taskId, (i++ % 100) / 100), null);
    })();
    await until(async () => (await connections[0]!.xlen(`${prefix}:events:${taskId}`)) > 20, 'some events');
    const seen: number[][] = [];
    for (let i = 0; i < 10; i++) {
      const { subscriber, delivered } = recorder();
      const subscription = await b.subscribe(taskId, { seq: 0 }, subscriber);
      const history = subscription.history.map((logged) => logged.event.seq);
      await until(() => delivered.length > 5, 'live events after the history');
      subscription.unsubscribe();
      seen.push([...history, ...delivered.map((logged) => logged.event.seq)]);
    }
    stop = true;
    await publishing;
    for (const seqs of seen) {
      // Progress kept in full here (100 per task), so the sequence has no hole and no repeat.
      expect(seqs).toEqual(seqs.map((_, index) => seqs[0]! + index));
    }
  });

  it('thins progress but keeps lifecycle events, and resumes the multiplexed stream anywhere', async () => {
    const [a, b] = await startBrokers({ progressHistory: 3, globalHistory: 1000 });
    const taskId = uuidv7();
    const created = await a.publish(
      { event_type: 'task_created', task_id: taskId, timestamp: new Date().toISOString(), data: { task: {} as never } },
      null,
    );
    expect(created.event.seq).toBe(0);
    await a.publish(event(taskId, 'task_started', { attempt: 1, max_attempts: 1 }), null);
    for (let i = 0; i < 20; i++) await a.publish(progress(taskId, i / 20), null);
    await a.publish(event(taskId, 'task_completed', { result: null }), null);
    const { history } = await b.subscribe(taskId, { seq: 0 }, recorder().subscriber);
    const types = history.map((logged) => logged.event.event_type);
    expect(types[0]).toBe('task_started');
    expect(types.at(-1)).toBe('task_completed');
    const kept = types.filter((type) => type === 'progress_update').length;
    expect(kept).toBeGreaterThanOrEqual(3);
    expect(kept).toBeLessThanOrEqual(6);

    const all = await b.subscribeAll(created.position, recorder().subscriber);
    expect(all.complete).toBe(true);
    expect(all.history).toHaveLength(22);
    expect(all.history.map((logged) => logged.position)).toEqual(
      Array.from({ length: 22 }, (_, index) => created.position + 1 + index),
    );
    expect((await a.subscribeAll(created.position - 10_000, recorder().subscriber)).complete).toBe(false);
  });

  it('ends every task it evicts without leaving a key behind', async () => {
    const [store] = stores() as [RedisTaskStore];
    const [broker, other] = await startBrokers({ progressHistory: 2 });
    const watcher = recorder();
    await other.subscribeAll(undefined, watcher.subscriber);
    const run = async (owner: string, key?: string) => {
      const record = newRecord(owner, { labels: { batch: 'x' } });
      await store.create(record, key === undefined ? undefined : { key, fingerprint: 'f' });
      await broker.publish({ event_type: 'task_created', task_id: record.task_id, timestamp: record.created_at, data: { task: {} as never } }, owner);
      await store.transition(record.task_id, ['queued'], { status: 'running', attempt: 1 });
      await broker.publish(event(record.task_id, 'task_started', { attempt: 1, max_attempts: 1 }), owner);
      for (let i = 0; i < 5; i++) await broker.publish(progress(record.task_id, i / 5), owner);
      const expiresAt = new Date(Date.now() - 1).toISOString();
      await store.transition(record.task_id, ['running'], { status: 'completed', result: 1, expires_at: expiresAt });
      await broker.publish(event(record.task_id, 'task_completed', { result: 1 }), owner);
      return record.task_id;
    };
    // The service-wide keys (indexes, counts, the multiplexed log) exist from the first task on.
    await run('first');
    for (const taskId of await store.expired(Date.now(), 100)) {
      const removed = await store.delete(taskId);
      await broker.drop(taskId, 'evicted', removed!.owner);
    }
    const baseline = await keysOf(connections[0]!, prefix);

    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await run(`owner-${i % 3}`, `key-${i}`));
    expect((await keysOf(connections[0]!, prefix)).length).toBeGreaterThan(baseline.length + 12);
    const due = await store.expired(Date.now(), 100);
    expect(due.sort()).toEqual([...ids].sort());
    // Two instances evicting at once: each task is removed, and announced, exactly once.
    const secondStore = stores()[1]!;
    let dropped = 0;
    await Promise.all(
      due.flatMap((taskId) =>
        [store, secondStore].map(async (each) => {
          const removed = await each.delete(taskId);
          if (removed) {
            dropped++;
            await broker.drop(taskId, 'evicted', removed.owner);
          }
        }),
      ),
    );
    expect(dropped).toBe(12);
    expect(await keysOf(connections[0]!, prefix)).toEqual(baseline);
    expect(await store.size()).toBe(0);
    expect(await store.counts('owner-0')).toEqual({ queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });
    await until(
      () =>
        watcher.delivered.filter((logged) => logged.event.event_type === 'task_removed' && ids.includes(logged.event.task_id))
          .length === 12,
      'one task_removed per evicted task',
    );
  });

  it('answers backend_unavailable while Redis is away, ends open streams, and carries on when it is back', async () => {
    const proxy = await RedisProxy.start();
    const redis = await openRedis(proxy.url);
    const store = new RedisTaskStore({ redis, prefix });
    const broker = new RedisBroker({ redis, prefix, progressHistory: 10, globalHistory: 100, orphanTtlMs: 60_000, logger });
    try {
      await broker.start();
      const taskId = uuidv7();
      const open = recorder();
      await broker.subscribe(taskId, { seq: 0 }, open.subscriber);
      await proxy.cut();
      const started = performance.now();
      const failure = await store.get(taskId).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(AppError);
      expect((failure as AppError).code).toBe('backend_unavailable');
      expect((failure as AppError).status).toBe(503);
      expect(performance.now() - started).toBeLessThan(3000);
      expect(await broker.publish(progress(taskId, 0.5), null).catch((error: AppError) => error.code)).toBe(
        'backend_unavailable',
      );
      await until(() => open.lost() === 1, 'the open stream to be ended');

      await proxy.restore();
      await until(() => redis.status === 'ready', 'the connection to come back', 10_000);
      const record = newRecord();
      expect((await store.create(record)).kind).toBe('created');
      const again = recorder();
      await broker.subscribe(record.task_id, { seq: 0 }, again.subscriber);
      await withTimeout(
        (async () => {
          // The live reader reconnects on its own: keep publishing until it delivers.
          while (again.delivered.length === 0) {
            await broker.publish(progress(record.task_id, 0.1), null);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        })(),
        'live delivery after Redis came back',
      );
    } finally {
      await broker.close();
      redis.disconnect();
      await proxy.close();
    }
  });
});

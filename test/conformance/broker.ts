import { uuidv7 } from 'uuidv7';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Broker, LoggedEvent, NewTaskCreatedEvent, Subscriber, TaskSubscription } from '../../src/broker/broker.ts';
import type { NewTaskEvent } from '../../src/events.ts';
import { toSnapshot } from '../../src/task-record.ts';
import { until, withTimeout } from '../helpers/timeout.ts';
import { newRecord } from './store.ts';

export interface BrokerLimits {
  /** Progress events kept per task (between 1× and 2× this many). */
  progressHistory: number;
  /** Events of all tasks kept for resuming the multiplexed stream (between 1× and 2×). */
  globalHistory: number;
  /** Bytes of JSON the service-wide log holds at most (its newest event always). */
  globalHistoryBytes?: number;
}

export interface BrokerFixture {
  broker: Broker;
  /**
   * A second broker on the same backend, as another process would open it; only for
   * implementations shared between processes. Its events and the first one's are one log.
   */
  peer?: Broker;
  /** Closes the brokers (again, if the test did) and removes whatever they stored. */
  cleanup(): Promise<void>;
}

export interface BrokerConformanceOptions {
  /** Run the tests that need `peer`: the implementation is shared between processes. */
  shared?: boolean;
}

const now = () => new Date().toISOString();
const started = (taskId: string): NewTaskEvent => ({
  event_type: 'task_started',
  task_id: taskId,
  timestamp: now(),
  data: { attempt: 1, max_attempts: 1 },
});
const progress = (taskId: string, step: number): NewTaskEvent => ({
  event_type: 'progress_update',
  task_id: taskId,
  timestamp: now(),
  data: { value: null, text: `step ${step}`, step, total_steps: null, eta_ms: null },
});
const completed = (taskId: string): NewTaskEvent => ({
  event_type: 'task_completed',
  task_id: taskId,
  timestamp: now(),
  data: { result: { ok: true } },
});
const created = (taskId: string): NewTaskCreatedEvent => ({
  event_type: 'task_created',
  task_id: taskId,
  timestamp: now(),
  data: { task: toSnapshot(newRecord({ task_id: taskId })) },
});

/** A subscriber that keeps what it is given. */
function recorder() {
  const delivered: LoggedEvent[] = [];
  const removed: LoggedEvent[] = [];
  const subscriber: Subscriber = {
    deliver: (logged) => void delivered.push(logged),
    removed: (logged) => void removed.push(logged),
  };
  return { subscriber, delivered, removed };
}

const seqs = (events: readonly LoggedEvent[]) => events.map((logged) => logged.event.seq);
const types = (events: readonly LoggedEvent[]) => events.map((logged) => logged.event.event_type);

/**
 * The behaviour every Broker must have. `makeBroker` gives a fresh broker (and, when
 * `shared`, a peer on the same backend) with the given retention limits for each test.
 */
export function brokerConformance(
  name: string,
  makeBroker: (limits: BrokerLimits) => Promise<BrokerFixture>,
  { shared = false }: BrokerConformanceOptions = {},
): void {
  describe(`${name}: broker conformance`, () => {
    let fixture: BrokerFixture;
    let broker: Broker;
    const open = async (limits: BrokerLimits = { progressHistory: 100, globalHistory: 1000 }) => {
      await fixture?.cleanup();
      fixture = await makeBroker(limits);
      broker = fixture.broker;
    };
    beforeEach(() => open());
    afterEach(() => fixture.cleanup());

    /** Publishes one task's events one at a time, as the service does. */
    async function publishAll(events: (NewTaskEvent | NewTaskCreatedEvent)[], owner: string | null = null) {
      const logged: LoggedEvent[] = [];
      for (const event of events) logged.push(await broker.publish(event, owner));
      return logged;
    }

    it('numbers each task\'s events from 1 and orders all events by position, serialized once', async () => {
      const [a, b] = [uuidv7(), uuidv7()];
      const logged = await publishAll([created(a), started(a), created(b), progress(a, 1), started(b), completed(a)], 'alice');
      expect(logged.map((entry) => [entry.event.task_id === a ? 'a' : 'b', entry.event.seq])).toEqual([
        ['a', 0],
        ['a', 1],
        ['b', 0],
        ['a', 2],
        ['b', 1],
        ['a', 3],
      ]);
      const positions = logged.map((entry) => entry.position);
      expect(positions).toEqual([...positions].sort((x, y) => x - y));
      expect(new Set(positions).size).toBe(positions.length);
      for (const entry of logged) {
        expect(entry.owner).toBe('alice');
        expect(JSON.parse(entry.json)).toEqual(entry.event);
        expect(Number.isSafeInteger(entry.position)).toBe(true);
      }
      expect(logged[3]!.event).toMatchObject({ event_type: 'progress_update', data: { step: 1, text: 'step 1' } });
    });

    it('never hands task_created to the task\'s own subscribers, only to the all-tasks ones, even when they subscribed first', async () => {
      const taskId = uuidv7();
      const own = recorder();
      const bySeq = recorder();
      const all = recorder();
      const subscriptions = [
        await broker.subscribe(taskId, { position: 0 }, own.subscriber),
        await broker.subscribe(taskId, { seq: 0 }, bySeq.subscriber),
        await broker.subscribeAll(undefined, all.subscriber),
      ];
      await publishAll([created(taskId), started(taskId)]);
      await until(() => all.delivered.length === 2 && own.delivered.length >= 1 && bySeq.delivered.length >= 1, 'the events live');
      // Whatever was delivered by now includes task_created if it was ever going to be.
      await publishAll([completed(taskId)]);
      await until(() => own.delivered.length >= 2 && bySeq.delivered.length >= 2 && all.delivered.length === 3, 'the end live');
      expect(types(all.delivered)).toEqual(['task_created', 'task_started', 'task_completed']);
      expect(types(own.delivered)).toEqual(['task_started', 'task_completed']);
      expect(types(bySeq.delivered)).toEqual(['task_started', 'task_completed']);
      for (const subscription of subscriptions) subscription.unsubscribe();
    });

    it('gives a task subscriber its history after a seq, then live events, with no gap or duplicate', async () => {
      const taskId = uuidv7();
      await publishAll([started(taskId), progress(taskId, 1), progress(taskId, 2)]);
      const { subscriber, delivered } = recorder();
      const subscription = await broker.subscribe(taskId, { seq: 1 }, subscriber);
      expect(seqs(subscription.history)).toEqual([2, 3]);
      expect(subscription.ended).toBe(false);
      await publishAll([progress(taskId, 3), completed(taskId)]);
      await until(() => delivered.length === 2, 'two live events');
      expect(seqs(delivered)).toEqual([4, 5]);
      expect(types(delivered)).toEqual(['progress_update', 'task_completed']);
      subscription.unsubscribe();
    });

    it('loses nothing and repeats nothing when subscribing while events are being published', async () => {
      const taskId = uuidv7();
      const total = 200;
      const publishing = publishAll([started(taskId), ...Array.from({ length: total - 2 }, (_, i) => progress(taskId, i + 1)), completed(taskId)]);
      const subscriptions: TaskSubscription[] = [];
      const recorders: ReturnType<typeof recorder>[] = [];
      for (let i = 0; i < 5; i++) {
        const r = recorder();
        recorders.push(r);
        subscriptions.push(await broker.subscribe(taskId, { seq: 0 }, r.subscriber));
      }
      await publishing;
      for (const [index, r] of recorders.entries()) {
        await until(() => subscriptions[index]!.history.length + r.delivered.length >= total, `subscriber ${index} to have every event`);
        const all = [...subscriptions[index]!.history, ...r.delivered];
        expect(seqs(all), `subscriber ${index}`).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      }
      for (const subscription of subscriptions) subscription.unsubscribe();
    });

    it('resumes a task after a service-wide position', async () => {
      const [a, b] = [uuidv7(), uuidv7()];
      const logged = await publishAll([started(a), started(b), progress(a, 1), progress(b, 1), completed(a)]);
      const { subscriber } = recorder();
      const subscription = await broker.subscribe(a, { position: logged[1]!.position }, subscriber);
      expect(types(subscription.history)).toEqual(['progress_update', 'task_completed']);
      expect(subscription.history.map((entry) => entry.position)).toEqual([logged[2]!.position, logged[4]!.position]);
      expect(subscription.ended).toBe(false);
      subscription.unsubscribe();
    });

    it('says a task has ended for the subscriber only once its terminal event is at or before the resume point', async () => {
      const taskId = uuidv7();
      const logged = await publishAll([started(taskId), progress(taskId, 1)]);
      const before = await broker.subscribe(taskId, { seq: 2 }, recorder().subscriber);
      expect(before.ended).toBe(false);
      const terminal = (await publishAll([completed(taskId)]))[0]!;

      const fromStart = await broker.subscribe(taskId, { seq: 0 }, recorder().subscriber);
      expect(fromStart.ended).toBe(false);
      expect(types(fromStart.history)).toEqual(['task_started', 'progress_update', 'task_completed']);
      const atEnd = await broker.subscribe(taskId, { seq: 3 }, recorder().subscriber);
      expect(atEnd.ended).toBe(true);
      expect(atEnd.history).toEqual([]);
      const live = await broker.subscribe(taskId, { seq: Number.MAX_SAFE_INTEGER }, recorder().subscriber);
      expect(live.ended).toBe(true);
      const byPosition = await broker.subscribe(taskId, { position: terminal.position }, recorder().subscriber);
      expect(byPosition.ended).toBe(true);
      const beforeByPosition = await broker.subscribe(taskId, { position: logged[1]!.position }, recorder().subscriber);
      expect(beforeByPosition.ended).toBe(false);
      expect(types(beforeByPosition.history)).toEqual(['task_completed']);
      for (const subscription of [before, fromStart, atEnd, live, byPosition, beforeByPosition]) subscription.unsubscribe();
    });

    it('subscribes to a task with no events yet, and delivers its first ones', async () => {
      const taskId = uuidv7();
      const { subscriber, delivered } = recorder();
      const subscription = await broker.subscribe(taskId, { seq: 0 }, subscriber);
      expect(subscription.history).toEqual([]);
      expect(subscription.ended).toBe(false);
      await publishAll([started(taskId)]);
      await until(() => delivered.length === 1, 'the first event');
      expect(seqs(delivered)).toEqual([1]);
      subscription.unsubscribe();
    });

    it('delivers the first events of a task with no events yet to a live-only subscriber (a long poll)', async () => {
      const taskId = uuidv7();
      const { subscriber, delivered } = recorder();
      const subscription = await broker.subscribe(taskId, { seq: Number.MAX_SAFE_INTEGER }, subscriber);
      expect(subscription.history).toEqual([]);
      expect(subscription.ended).toBe(false);
      await publishAll([started(taskId), completed(taskId)]);
      await until(() => delivered.length === 2, 'the first two events');
      expect(seqs(delivered)).toEqual([1, 2]);
      subscription.unsubscribe();
    });

    it('thins a task\'s progress to the newest, keeping every lifecycle event, with seqs still in order', async () => {
      await open({ progressHistory: 5, globalHistory: 1000 });
      const taskId = uuidv7();
      await publishAll([started(taskId), ...Array.from({ length: 40 }, (_, i) => progress(taskId, i + 1)), completed(taskId)]);
      const { history } = await broker.subscribe(taskId, { seq: 0 }, recorder().subscriber);
      const kept = history.filter((entry) => entry.event.event_type === 'progress_update');
      expect(kept.length).toBeGreaterThanOrEqual(5);
      expect(kept.length).toBeLessThanOrEqual(10);
      expect(seqs(kept).at(-1)).toBe(41);
      expect(history[0]!.event.event_type).toBe('task_started');
      expect(history.at(-1)!.event).toMatchObject({ event_type: 'task_completed', seq: 42 });
      const order = seqs(history);
      expect(order).toEqual([...order].sort((x, y) => x - y));
    });

    it('streams every task live to subscribeAll, with task_created, and no history without a resume point', async () => {
      const [a, b] = [uuidv7(), uuidv7()];
      await publishAll([created(a), started(a)]);
      const { subscriber, delivered } = recorder();
      const subscription = await broker.subscribeAll(undefined, subscriber);
      expect(subscription.history).toEqual([]);
      expect(subscription.complete).toBe(true);
      await publishAll([created(b), progress(a, 1), started(b)], 'bob');
      await until(() => delivered.length === 3, 'three live events');
      expect(delivered.map((entry) => [entry.event.task_id === a ? 'a' : 'b', entry.event.event_type, entry.owner])).toEqual([
        ['b', 'task_created', 'bob'],
        ['a', 'progress_update', 'bob'],
        ['b', 'task_started', 'bob'],
      ]);
      expect(broker.subscriberCount).toBe(1);
      subscription.unsubscribe();
      subscription.unsubscribe();
      expect(broker.subscriberCount).toBe(0);
    });

    it('resumes subscribeAll after a position, and says when what followed it is no longer kept', async () => {
      await open({ progressHistory: 100, globalHistory: 5 });
      const taskId = uuidv7();
      const logged = await publishAll([created(taskId), started(taskId), progress(taskId, 1)]);
      const resumed = await broker.subscribeAll(logged[0]!.position, recorder().subscriber);
      expect(resumed.complete).toBe(true);
      expect(resumed.history.map((entry) => entry.position)).toEqual([logged[1]!.position, logged[2]!.position]);
      resumed.unsubscribe();

      await publishAll(Array.from({ length: 20 }, (_, i) => progress(taskId, i + 2)));
      const stale = await broker.subscribeAll(logged[0]!.position, recorder().subscriber);
      expect(stale.complete).toBe(false);
      stale.unsubscribe();
    });

    it('drops a task: its subscribers hear task_removed, subscribeAll gets it, and its log is gone', async () => {
      const taskId = uuidv7();
      await publishAll([started(taskId), completed(taskId)], 'alice');
      const own = recorder();
      const all = recorder();
      const subscription = await broker.subscribe(taskId, { seq: 2 }, own.subscriber);
      const global = await broker.subscribeAll(undefined, all.subscriber);
      await broker.drop(taskId, 'evicted', 'alice');
      await until(() => own.removed.length === 1 && all.delivered.length === 1, 'task_removed on both');
      for (const removed of [own.removed[0]!, all.delivered[0]!]) {
        expect(removed.event).toMatchObject({ event_type: 'task_removed', task_id: taskId, seq: 0, data: { reason: 'evicted' } });
        expect(removed.owner).toBe('alice');
      }
      subscription.unsubscribe();
      global.unsubscribe();
      const after = await broker.subscribe(taskId, { seq: 0 }, recorder().subscriber);
      expect(after.history).toEqual([]);
      after.unsubscribe();
    });

    it('counts the bytes of every log: a task\'s events in its log and the service-wide one, until thinned, trimmed or dropped', async () => {
      await open({ progressHistory: 2, globalHistory: 1000 });
      const bytesOf = (logged: readonly LoggedEvent[]) => logged.reduce((sum, entry) => sum + Buffer.byteLength(entry.json), 0);
      expect(await broker.retainedBytes()).toBe(0);
      const taskId = uuidv7();
      const [createdEvent, ...events] = await publishAll([created(taskId), started(taskId), progress(taskId, 1), completed(taskId)]);
      // task_created is in the service-wide log only; the others in both.
      let global = bytesOf([createdEvent!, ...events]);
      expect(await broker.retainedBytes()).toBe(global + bytesOf(events));

      // Thinning a task's progress frees its bytes in the task's log (the service-wide log keeps them).
      const other = uuidv7();
      const more = await publishAll([started(other), ...Array.from({ length: 5 }, (_, i) => progress(other, i + 1))]);
      global += bytesOf(more);
      const history = (await broker.subscribe(other, { seq: 0 }, recorder().subscriber)).history;
      expect(history.length).toBeLessThan(more.length);
      expect(await broker.retainedBytes()).toBe(global + bytesOf(events) + bytesOf(history));

      await broker.drop(taskId, 'evicted', null);
      await broker.drop(other, 'evicted', null);
      const removed = await broker.subscribeAll(createdEvent!.position - 1, recorder().subscriber);
      expect(await broker.retainedBytes(), 'only the service-wide log is left').toBe(bytesOf(removed.history));
      expect(bytesOf(removed.history)).toBeGreaterThan(global);
    });

    it('trims the service-wide log to its bytes, oldest first, keeping the newest event, and says a resume point there is lost', async () => {
      const taskId = uuidv7();
      const sizeOf = (entry: LoggedEvent) => Buffer.byteLength(entry.json);
      const probe = await publishAll([progress(uuidv7(), 10)]);
      // Room for three progress events (their seqs may take a digit more), not four.
      const limit = 3 * sizeOf(probe[0]!) + 10;
      await open({ progressHistory: 100, globalHistory: 1000, globalHistoryBytes: limit });
      const logged = await publishAll([created(taskId), started(taskId), ...Array.from({ length: 10 }, (_, i) => progress(taskId, i + 1))]);
      const kept = await broker.subscribeAll(logged[0]!.position - 1, recorder().subscriber);
      expect(kept.complete, 'the oldest events were trimmed').toBe(false);
      const tail = await broker.subscribeAll(logged.at(-3)!.position - 1, recorder().subscriber);
      expect(tail.complete).toBe(true);
      expect(tail.history.map((entry) => entry.position)).toEqual(logged.slice(-3).map((entry) => entry.position));
      const global = tail.history.reduce((sum, entry) => sum + sizeOf(entry), 0);
      expect(global).toBeLessThanOrEqual(limit);
      const taskLog = (await broker.subscribe(taskId, { seq: 0 }, recorder().subscriber)).history;
      expect(taskLog).toHaveLength(11);
      expect(await broker.retainedBytes()).toBe(global + taskLog.reduce((sum, entry) => sum + sizeOf(entry), 0));

      // An event larger than the whole limit stays, alone, as the newest.
      const big = (await publishAll([{ ...completed(taskId), data: { result: { text: 'z'.repeat(limit * 2) } } } as NewTaskEvent]))[0]!;
      const last = await broker.subscribeAll(big.position - 1, recorder().subscriber);
      expect(last.complete).toBe(true);
      expect(last.history.map((entry) => entry.position)).toEqual([big.position]);
      expect((await broker.subscribeAll(big.position - 2, recorder().subscriber)).complete).toBe(false);
      kept.unsubscribe();
      tail.unsubscribe();
      last.unsubscribe();
    });

    it('stops delivering after unsubscribe, and counts open subscriptions', async () => {
      const taskId = uuidv7();
      const first = recorder();
      const second = recorder();
      const one = await broker.subscribe(taskId, { seq: 0 }, first.subscriber);
      const two = await broker.subscribe(taskId, { seq: 0 }, second.subscriber);
      expect(broker.subscriberCount).toBe(2);
      one.unsubscribe();
      expect(broker.subscriberCount).toBe(1);
      await publishAll([started(taskId), completed(taskId)]);
      await until(() => second.delivered.length === 2, 'the remaining subscriber to get both events');
      expect(first.delivered).toEqual([]);
      two.unsubscribe();
      expect(broker.subscriberCount).toBe(0);
    });

    if (shared) {
      describe('shared between processes', () => {
        it('numbers one task\'s events in one sequence whichever process publishes, and delivers them to both', async () => {
          const peer = fixture.peer!;
          const taskId = uuidv7();
          const here = recorder();
          const there = recorder();
          const mine = await broker.subscribe(taskId, { seq: 0 }, here.subscriber);
          const theirs = await peer.subscribe(taskId, { seq: 0 }, there.subscriber);
          const logged = [
            await broker.publish(started(taskId), null),
            await peer.publish(progress(taskId, 1), null),
            await broker.publish(completed(taskId), null),
          ];
          expect(seqs(logged)).toEqual([1, 2, 3]);
          await until(() => here.delivered.length === 3 && there.delivered.length === 3, 'every event on both processes');
          expect(seqs(here.delivered)).toEqual([1, 2, 3]);
          expect(seqs(there.delivered)).toEqual([1, 2, 3]);
          const positions = logged.map((entry) => entry.position);
          expect(positions).toEqual([...positions].sort((x, y) => x - y));
          mine.unsubscribe();
          theirs.unsubscribe();
        });

        it('resumes on one process after a position the other one handed out', async () => {
          const peer = fixture.peer!;
          const taskId = uuidv7();
          const logged = [await broker.publish(created(taskId), null), await broker.publish(started(taskId), null)];
          const resumed = await peer.subscribeAll(logged[0]!.position, recorder().subscriber);
          expect(resumed.complete).toBe(true);
          expect(resumed.history.map((entry) => entry.event.event_type)).toEqual(['task_started']);
          resumed.unsubscribe();
        });

        it('holds a task\'s first event published on one process until its task_created, on its way from the other, is logged', async () => {
          const peer = fixture.peer!;
          const taskId = uuidv7();
          const all = recorder();
          const watching = await broker.subscribeAll(undefined, all.subscriber);
          // The creating process queues the task; the peer starts it before task_created is out.
          await broker.expectCreated(taskId);
          let startLogged: LoggedEvent | undefined;
          const start = peer.publish(started(taskId), null).then((logged) => (startLogged = logged));
          // Other tasks' events go on meanwhile; the held one is not among them.
          const other = uuidv7();
          await publishAll([created(other), started(other)]);
          expect(startLogged).toBeUndefined();
          const createdLogged = await broker.publish(created(taskId), null);
          await start;
          expect(startLogged!.event.seq).toBe(1);
          expect(startLogged!.position).toBeGreaterThan(createdLogged.position);
          await until(() => all.delivered.length === 4, 'every event on the all-tasks subscription');
          expect(all.delivered.map((logged) => [logged.task_id, logged.event_type])).toEqual([
            [other, 'task_created'],
            [other, 'task_started'],
            [taskId, 'task_created'],
            [taskId, 'task_started'],
          ]);
          watching.unsubscribe();
        });

        it('logs a task\'s first event anyway when the task_created said to be on its way never comes (its process died)', async () => {
          const peer = fixture.peer!;
          const taskId = uuidv7();
          await broker.expectCreated(taskId);
          const logged = await withTimeout(peer.publish(started(taskId), null), 'the first event to be logged', 15_000);
          expect(logged.event.seq).toBe(1);
          // The task's later events are not held.
          expect((await broker.publish(completed(taskId), null)).event.seq).toBe(2);
        });

        it('tells the other process\'s subscribers when a task is dropped', async () => {
          const peer = fixture.peer!;
          const taskId = uuidv7();
          await broker.publish(started(taskId), null);
          const there = recorder();
          const subscription = await peer.subscribe(taskId, { seq: 1 }, there.subscriber);
          await broker.drop(taskId, 'deleted', null);
          await until(() => there.removed.length === 1, 'task_removed on the other process');
          expect(there.removed[0]!.event).toMatchObject({ event_type: 'task_removed', data: { reason: 'deleted' } });
          subscription.unsubscribe();
        });
      });
    }

    it('closes more than once', async () => {
      await broker.close();
      await broker.close();
    });
  });
}

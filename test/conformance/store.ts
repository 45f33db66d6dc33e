import { uuidv7 } from 'uuidv7';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskStatus } from '../../src/events.ts';
import type { TaskRecord, TaskStore } from '../../src/store/task-store.ts';

/** A store to test, and how to throw it and everything it wrote away afterwards. */
export interface StoreFixture {
  store: TaskStore;
  /** Closes the store (again, if the test did) and removes whatever it stored. */
  cleanup(): Promise<void>;
}

const NOT_ENDED: TaskStatus[] = ['queued', 'running'];

/** A queued task as the service creates it; `changes` override any field. */
export function newRecord(changes: Partial<TaskRecord> = {}): TaskRecord {
  return {
    task_id: uuidv7(),
    type: 'sample',
    status: 'queued',
    input: { steps: 3, nested: { list: [1, 'two', null, { deep: true }] } },
    progress: { value: null, text: null, step: null, total_steps: null, eta_ms: null },
    result: null,
    error: null,
    created_at: new Date().toISOString(),
    started_at: null,
    finished_at: null,
    expires_at: null,
    timeout_ms: 60_000,
    priority: 0,
    attempt: 0,
    max_attempts: 1,
    retry_backoff_ms: 1000,
    labels: {},
    retry_of: null,
    owner: null,
    ...changes,
  };
}

/** The fields of an ended task, expiring at `expiresAt` (epoch ms). */
const ended = (status: 'completed' | 'failed' | 'cancelled', expiresAt: number) => ({
  status,
  finished_at: new Date(expiresAt - 1000).toISOString(),
  expires_at: new Date(expiresAt).toISOString(),
});

/**
 * The behaviour every TaskStore must have, whatever holds the records. `makeStore` gives a
 * fresh, empty store for each test.
 */
export function storeConformance(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`${name}: task store conformance`, () => {
    let fixture: StoreFixture;
    let store: TaskStore;
    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    /** Creates records one after another (ids sort by creation). */
    async function createAll(records: TaskRecord[]): Promise<TaskRecord[]> {
      for (const record of records) expect((await store.create(record)).kind).toBe('created');
      return records;
    }

    it('gives back a created record field for field, and nothing for an unknown id', async () => {
      const record = newRecord({
        labels: { team: 'data', 'with:colon': 'a b' },
        owner: 'alice',
        priority: -3,
        retry_of: uuidv7(),
        progress: { value: 0.25, text: 'a quarter', step: 1, total_steps: 4, eta_ms: 1500 },
      });
      expect(await store.create(record)).toEqual({ kind: 'created', record });
      expect(await store.get(record.task_id)).toEqual(record);
      expect(await store.get(uuidv7())).toBeUndefined();
      expect(await store.size()).toBe(1);
    });

    it('refuses a second create with the same Idempotency-Key: the same body gets the first task, another body is named', async () => {
      const first = newRecord({ owner: 'alice' });
      expect((await store.create(first, { key: 'k1', fingerprint: 'body-a' })).kind).toBe('created');

      const same = await store.create(newRecord({ owner: 'alice' }), { key: 'k1', fingerprint: 'body-a' });
      expect(same).toEqual({ kind: 'existing', record: first });
      const other = await store.create(newRecord({ owner: 'alice' }), { key: 'k1', fingerprint: 'body-b' });
      expect(other).toEqual({ kind: 'key_reused', taskId: first.task_id });
      expect(await store.size()).toBe(1);
    });

    it('scopes Idempotency-Keys per owner, with no owner as an owner of its own', async () => {
      const results = await Promise.all(
        ['alice', 'bob', null].map(async (owner) => store.create(newRecord({ owner }), { key: 'shared', fingerprint: 'x' })),
      );
      expect(results.map((result) => result.kind)).toEqual(['created', 'created', 'created']);
      expect(await store.size()).toBe(3);
    });

    it('answers the newest state of the task an Idempotency-Key names', async () => {
      const first = newRecord();
      await store.create(first, { key: 'k', fingerprint: 'f' });
      await store.transition(first.task_id, ['queued'], { status: 'running', attempt: 1 });
      const again = await store.create(newRecord(), { key: 'k', fingerprint: 'f' });
      expect(again.kind).toBe('existing');
      expect(again.kind === 'existing' && again.record).toMatchObject({ task_id: first.task_id, status: 'running', attempt: 1 });
    });

    it('creates one task for many concurrent creates with one Idempotency-Key', async () => {
      const records = Array.from({ length: 20 }, () => newRecord({ owner: 'alice' }));
      const results = await Promise.all(records.map((record) => store.create(record, { key: 'race', fingerprint: 'f' })));
      const created = results.filter((result) => result.kind === 'created');
      expect(created).toHaveLength(1);
      const winner = created[0]!.record.task_id;
      for (const result of results) {
        if (result.kind === 'existing') expect(result.record.task_id).toBe(winner);
        else expect(result.kind).toBe('created');
      }
      expect(await store.size()).toBe(1);
    });

    it('frees an Idempotency-Key when its task is deleted', async () => {
      const first = newRecord();
      await store.create(first, { key: 'k', fingerprint: 'f' });
      await store.delete(first.task_id);
      const second = newRecord();
      expect(await store.create(second, { key: 'k', fingerprint: 'other' })).toEqual({ kind: 'created', record: second });
    });

    it('transitions a task only from the statuses given, and returns it before and after', async () => {
      const [record] = await createAll([newRecord()]);
      const taskId = record!.task_id;

      const refused = await store.transition(taskId, ['running'], { status: 'completed' });
      expect(refused).toEqual({ applied: false, record });

      const started = await store.transition(taskId, ['queued'], { status: 'running', attempt: 1, started_at: record!.created_at });
      expect(started.applied).toBe(true);
      if (!started.applied) return;
      expect(started.previous).toEqual(record);
      expect(started.record).toEqual({ ...record, status: 'running', attempt: 1, started_at: record!.created_at });
      expect(await store.get(taskId)).toEqual(started.record);
      // A record handed out earlier is a snapshot: the change is a new record.
      expect(record!.status).toBe('queued');

      const unknown = await store.transition(uuidv7(), NOT_ENDED, { status: 'cancelled' });
      expect(unknown).toEqual({ applied: false, record: undefined });
    });

    it('changes only the fields given, keeping the others, and stores unknown JSON results as given', async () => {
      const [record] = await createAll([newRecord({ labels: { a: '1' }, owner: 'carol' })]);
      await store.transition(record!.task_id, ['queued'], { status: 'running' });
      const progress = { value: 0.5, text: 'half', step: 2, total_steps: 4, eta_ms: null };
      await store.transition(record!.task_id, ['running'], { progress });
      const result = { rows: [{ id: 1, ok: true }], empty: {}, text: 'ünïcødé ✓' };
      const end = ended('completed', Date.now() + 60_000);
      const done = await store.transition(record!.task_id, ['running'], { ...end, result });
      const expected = { ...record!, ...end, progress, result };
      expect(done).toEqual({ applied: true, record: expected, previous: { ...record!, status: 'running', progress } });
      expect(await store.get(record!.task_id)).toEqual(expected);
    });

    it('lets exactly one of two racing ends win', async () => {
      for (let round = 0; round < 10; round++) {
        const [record] = await createAll([newRecord({ status: 'running' })]);
        const expires = Date.now() + 60_000;
        const results = await Promise.all([
          store.transition(record!.task_id, NOT_ENDED, ended('completed', expires)),
          store.transition(record!.task_id, NOT_ENDED, ended('cancelled', expires)),
        ]);
        expect(results.filter((result) => result.applied), `round ${round}`).toHaveLength(1);
        const winner = results.find((result) => result.applied)!.record!.status;
        expect((await store.get(record!.task_id))!.status).toBe(winner);
      }
    });

    it('marks a task that has not ended as cancel-requested, keeping the first reason; never an ended or unknown one', async () => {
      const [queued, running, done] = await createAll([
        newRecord(),
        newRecord({ status: 'running', attempt: 1 }),
        newRecord({ ...ended('completed', Date.now() + 60_000), attempt: 1 }),
      ]);
      expect(await store.requestCancel(queued!.task_id, 'requested')).toEqual({ accepted: true, record: queued, reason: 'requested' });
      // A later request (a shutdown after a client's cancel) is accepted, but the first reason stands.
      expect(await store.requestCancel(queued!.task_id, 'shutdown')).toEqual({ accepted: true, record: queued, reason: 'requested' });
      expect(await store.requestCancel(running!.task_id, 'shutdown')).toEqual({ accepted: true, record: running, reason: 'shutdown' });
      expect(await store.requestCancel(done!.task_id, 'requested')).toEqual({ accepted: false, record: done });
      expect(await store.requestCancel(uuidv7(), 'requested')).toEqual({ accepted: false, record: undefined });
      // The mark is not part of the record.
      expect(await store.get(queued!.task_id)).toEqual(queued);
    });

    it('refuses a transition asked to respect a cancel request, with its reason; an ordinary one still applies', async () => {
      const [record] = await createAll([newRecord({ status: 'running', attempt: 1 })]);
      const taskId = record!.task_id;
      const expires = Date.now() + 60_000;
      // Without a request, the guard changes nothing.
      const progress = { value: 0.5, text: null, step: null, total_steps: null, eta_ms: null };
      const updated = await store.transition(taskId, ['running'], { progress }, { unlessCancelRequested: true });
      expect(updated.applied).toBe(true);
      const current = { ...record!, progress };

      await store.requestCancel(taskId, 'requested');
      const refused = await store.transition(taskId, NOT_ENDED, ended('completed', expires), { unlessCancelRequested: true });
      expect(refused).toEqual({ applied: false, record: current, cancelRequested: 'requested' });
      // A status that is not allowed is refused as always, with no reason given.
      expect(await store.transition(taskId, ['queued'], { status: 'running' }, { unlessCancelRequested: true })).toEqual({
        applied: false,
        record: current,
      });
      const cancelled = await store.transition(taskId, NOT_ENDED, ended('cancelled', expires));
      expect(cancelled.applied).toBe(true);
      expect((await store.get(taskId))!.status).toBe('cancelled');
      // Ended: no further request is accepted, and the mark went away with the task.
      expect((await store.requestCancel(taskId, 'shutdown')).accepted).toBe(false);
      await store.delete(taskId);
      expect(await store.requestCancel(taskId, 'requested')).toEqual({ accepted: false, record: undefined });
    });

    it('lets exactly one of an end and a cancel request racing decide the end, in either order', async () => {
      for (const cancelFirst of [true, false]) {
        const [record] = await createAll([newRecord({ status: 'running', attempt: 1 })]);
        const end = () => store.transition(record!.task_id, NOT_ENDED, ended('completed', Date.now() + 60_000), { unlessCancelRequested: true });
        const request = () => store.requestCancel(record!.task_id, 'requested');
        const [ending, cancelling] = cancelFirst
          ? await Promise.all([request(), end()]).then(([c, e]) => [e, c] as const)
          : await Promise.all([end(), request()]);
        // The cancel accepted means the end was refused for it; the end applied means the cancel was refused.
        expect(ending.applied, `cancel first: ${cancelFirst}`).toBe(!cancelling.accepted);
        if (!ending.applied) expect(ending.cancelRequested).toBe('requested');
        expect((await store.get(record!.task_id))!.status).toBe(cancelling.accepted ? 'running' : 'completed');
      }
    });

    it('counts tasks per status, in all and per owner, through creates, transitions and deletes', async () => {
      const [a, b, c] = await createAll([newRecord({ owner: 'alice' }), newRecord({ owner: 'alice' }), newRecord({ owner: 'bob' })]);
      await createAll([newRecord()]);
      await store.transition(a!.task_id, ['queued'], { status: 'running' });
      await store.transition(b!.task_id, ['queued'], ended('failed', Date.now() + 1000));
      const zero = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
      expect(await store.counts()).toEqual({ ...zero, queued: 2, running: 1, failed: 1 });
      expect(await store.counts('alice')).toEqual({ ...zero, running: 1, failed: 1 });
      expect(await store.counts('bob')).toEqual({ ...zero, queued: 1 });
      expect(await store.counts('nobody')).toEqual(zero);
      expect(await store.size()).toBe(4);

      await store.delete(c!.task_id);
      expect(await store.counts('bob')).toEqual(zero);
      expect(await store.counts()).toEqual({ ...zero, queued: 1, running: 1, failed: 1 });
      expect(await store.size()).toBe(3);
    });

    it('counts the bytes of inputs, results and errors as JSON, through creates, transitions and deletes', async () => {
      expect(await store.retainedBytes()).toBe(0);
      const input = { text: 'é'.repeat(1000) }; // two bytes each in UTF-8
      const [a, b] = await createAll([newRecord({ input }), newRecord({ input: { n: 1 } })]);
      const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
      const base = bytesOf(input) + bytesOf({ n: 1 }) + 4 * bytesOf(null);
      expect(await store.retainedBytes()).toBe(base);
      await store.transition(a!.task_id, ['queued'], { status: 'running', progress: { value: 0.5, text: 'x'.repeat(500), step: null, total_steps: null, eta_ms: null } });
      expect(await store.retainedBytes(), 'progress is not counted').toBe(base);
      const result = { items: ['y'.repeat(3000)] };
      await store.transition(a!.task_id, ['running'], { ...ended('completed', Date.now() + 1000), result });
      expect(await store.retainedBytes()).toBe(base + bytesOf(result) - bytesOf(null));
      await store.transition(b!.task_id, ['queued'], { ...ended('failed', Date.now() + 1000), error: { code: 'task_error', message: 'boom' } });
      const withError = base + bytesOf(result) - bytesOf(null) + bytesOf({ code: 'task_error', message: 'boom' }) - bytesOf(null);
      expect(await store.retainedBytes()).toBe(withError);
      await store.delete(a!.task_id);
      await store.delete(a!.task_id);
      expect(await store.retainedBytes()).toBe(withError - bytesOf(input) - bytesOf(result) - bytesOf(null));
      await store.delete(b!.task_id);
      expect(await store.retainedBytes()).toBe(0);
    });

    it('lists newest first, filtered by status, type, labels and owner, paged before a task id', async () => {
      const records = await createAll([
        newRecord({ type: 'sample', labels: { team: 'a', env: 'prod' }, owner: 'alice' }),
        newRecord({ type: 'primes', labels: { team: 'a' }, owner: 'alice' }),
        newRecord({ type: 'sample', labels: { team: 'b' }, owner: 'bob' }),
        newRecord({ type: 'sample', labels: { team: 'a', env: 'prod' }, owner: 'alice' }),
        newRecord({ type: 'sample', labels: {}, owner: null }),
      ]);
      const ids = (tasks: TaskRecord[]) => tasks.map((task) => records.findIndex((record) => record.task_id === task.task_id));
      await store.transition(records[1]!.task_id, ['queued'], { status: 'running' });

      const all = await store.list({ limit: 100 });
      expect(ids(all.tasks)).toEqual([4, 3, 2, 1, 0]);
      expect(all.hasMore).toBe(false);
      expect(ids((await store.list({ limit: 100, status: 'running' })).tasks)).toEqual([1]);
      expect(ids((await store.list({ limit: 100, type: 'sample' })).tasks)).toEqual([4, 3, 2, 0]);
      expect(ids((await store.list({ limit: 100, labels: { team: 'a' } })).tasks)).toEqual([3, 1, 0]);
      expect(ids((await store.list({ limit: 100, labels: { team: 'a', env: 'prod' } })).tasks)).toEqual([3, 0]);
      expect(ids((await store.list({ limit: 100, owner: 'alice' })).tasks)).toEqual([3, 1, 0]);
      expect(ids((await store.list({ limit: 100, owner: 'alice', type: 'sample', status: 'queued' })).tasks)).toEqual([3, 0]);

      const first = await store.list({ limit: 2 });
      expect(ids(first.tasks)).toEqual([4, 3]);
      expect(first.hasMore).toBe(true);
      const second = await store.list({ limit: 2, before: first.tasks[1]!.task_id });
      expect(ids(second.tasks)).toEqual([2, 1]);
      expect(second.hasMore).toBe(true);
      const last = await store.list({ limit: 2, before: second.tasks[1]!.task_id });
      expect(ids(last.tasks)).toEqual([0]);
      expect(last.hasMore).toBe(false);
      // Exactly `limit` left: no further page.
      expect((await store.list({ limit: 2, before: records[2]!.task_id })).hasMore).toBe(false);
    });

    it('deletes a task once: the record to exactly one of two racing deletes', async () => {
      const [record] = await createAll([newRecord()]);
      const results = await Promise.all([store.delete(record!.task_id), store.delete(record!.task_id)]);
      expect(results.filter((result) => result !== undefined)).toEqual([record]);
      expect(await store.get(record!.task_id)).toBeUndefined();
      expect(await store.delete(record!.task_id)).toBeUndefined();
      expect((await store.list({ limit: 10 })).tasks).toEqual([]);
    });

    it('finds ended tasks whose expiry has passed, soonest first, up to a limit, and never one that has not ended', async () => {
      const now = Date.now();
      const records = await createAll(Array.from({ length: 5 }, () => newRecord()));
      await store.transition(records[0]!.task_id, NOT_ENDED, ended('completed', now - 300));
      await store.transition(records[1]!.task_id, NOT_ENDED, ended('failed', now - 200));
      await store.transition(records[2]!.task_id, NOT_ENDED, ended('cancelled', now - 100));
      await store.transition(records[3]!.task_id, NOT_ENDED, ended('completed', now + 60_000));
      // records[4] stays queued.
      const id = (index: number) => records[index]!.task_id;

      expect(await store.expired(now, 100)).toEqual([id(0), id(1), id(2)]);
      expect(await store.expired(now, 2)).toEqual([id(0), id(1)]);
      expect(await store.expired(now - 250, 100)).toEqual([id(0)]);
      expect(await store.expired(now + 60_000, 100)).toEqual([id(0), id(1), id(2), id(3)]);
      expect(await store.oldestEnded()).toBe(id(0));

      await store.delete(id(0));
      expect(await store.expired(now, 100)).toEqual([id(1), id(2)]);
      expect(await store.oldestEnded()).toBe(id(1));
    });

    it('has no oldest ended task while none has ended', async () => {
      expect(await store.oldestEnded()).toBeUndefined();
      await createAll([newRecord(), newRecord({ status: 'running' })]);
      expect(await store.oldestEnded()).toBeUndefined();
      expect(await store.expired(Date.now() + 1e9, 10)).toEqual([]);
    });

    it('closes more than once', async () => {
      await store.close();
      await store.close();
    });
  });
}

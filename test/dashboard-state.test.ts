// The dashboard's pure modules, without a browser: the event reducer, the task list it keeps,
// how a task is worded, the server clock, the stream's timing rules and the schema-to-form rules.
import { describe, expect, it } from 'vitest';
import { formatDuration, noteOf, progressLabel, shortId, timing } from '../web/format.js';
import { controlKind, fieldOfPointer, humanize, placeErrors, rangeHint } from '../web/schema-form.js';
import { ServerClock } from '../web/server-clock.js';
import { nextReconnectDelayMs, RECONNECT_MAX_MS, renewalDelayMs, resumeUrl, tokenLifetimeMs } from '../web/stream-connection.js';
import { matchesFilter, TaskList } from '../web/task-list.js';
import { applyTaskEvent, entryOf, SEQ_UNKNOWN } from '../web/task-state.js';

const snapshot = (fields: Record<string, unknown> = {}) => ({
  task_id: '01a20cf1-3fb3-7f03-9811-8e0070b8f065',
  type: 'sample',
  status: 'queued',
  attempt: 0,
  max_attempts: 1,
  progress: { value: null, text: null },
  started_at: null,
  finished_at: null,
  error: null,
  result: null,
  ...fields,
});
const event = (seq: number, event_type: string, data: unknown) => ({ seq, event_type, data, timestamp: `2026-12-01T00:00:0${seq}.000Z` });

describe('the dashboard event reducer', () => {
  it('walks a task through its events and ignores duplicates and anything after the end', () => {
    const entry = entryOf(snapshot(), 0);
    expect(applyTaskEvent(entry, event(1, 'task_started', { attempt: 1, max_attempts: 1 }))).toBe(true);
    expect(entry.task).toMatchObject({ status: 'running', attempt: 1, started_at: '2026-12-01T00:00:01.000Z' });
    expect(applyTaskEvent(entry, event(2, 'progress_update', { value: 0.5, text: 'half' }))).toBe(true);
    expect(applyTaskEvent(entry, event(2, 'progress_update', { value: 0.4, text: 'again' }))).toBe(false);
    expect(entry.task.progress).toMatchObject({ value: 0.5, text: 'half' });
    expect(applyTaskEvent(entry, event(3, 'task_completed', { result: { ok: true } }))).toBe(true);
    expect(entry.task).toMatchObject({ status: 'completed', result: { ok: true }, finished_at: '2026-12-01T00:00:03.000Z' });
    expect(applyTaskEvent(entry, event(4, 'task_cancelled', { reason: 'requested' }))).toBe(false);
    expect(entry.lastSeq).toBe(3);
  });

  it('recognises, for a task known only from a snapshot, events the snapshot already reflects', () => {
    const entry = entryOf(snapshot({ status: 'running', attempt: 2, progress: { value: 0.6, text: 'later' } }));
    expect(entry.lastSeq).toBe(SEQ_UNKNOWN);
    expect(applyTaskEvent(entry, event(1, 'task_started', { attempt: 2, max_attempts: 3 }))).toBe(false);
    expect(applyTaskEvent(entry, event(2, 'progress_update', { value: 0.3, text: 'earlier' }))).toBe(false);
    expect(entry.task.progress.value).toBe(0.6);
    expect(applyTaskEvent(entry, event(3, 'progress_update', { value: 0.7, text: 'newer' }))).toBe(true);
    expect(entry.lastSeq).toBe(3);
  });

  it('keeps the cancel reason and a failure\'s error', () => {
    const cancelled = entryOf(snapshot(), 0);
    applyTaskEvent(cancelled, event(1, 'task_cancelled', { reason: 'shutdown' }));
    expect(cancelled.task).toMatchObject({ status: 'cancelled', cancel_reason: 'shutdown' });
    const failed = entryOf(snapshot(), 0);
    applyTaskEvent(failed, event(1, 'task_failed', { error: { code: 'timeout', message: 'too slow' } }));
    expect(failed.task).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
  });
});

describe('the schema-to-form rules', () => {
  it('picks a control per JSON Schema property', () => {
    expect(controlKind({ enum: ['a', 'b'] })).toBe('enum');
    expect(controlKind({ type: 'integer', minimum: 1 })).toBe('number');
    expect(controlKind({ anyOf: [{ type: 'number' }, { type: 'null' }] })).toBe('number');
    expect(controlKind({ type: 'boolean' })).toBe('checkbox');
    expect(controlKind({ type: 'string', maxLength: 100 })).toBe('text');
    expect(controlKind({ type: 'string' }, 'a,b\n1,2')).toBe('textarea');
    expect(controlKind({ type: 'string', maxLength: 100_000 })).toBe('textarea');
    expect(controlKind({ type: 'array', items: { type: 'string' } })).toBe('list');
    expect(controlKind({ type: 'object' })).toBe('json');
  });

  it('labels fields and describes their ranges', () => {
    expect(humanize('step_ms')).toBe('Step (ms)');
    expect(humanize('csv')).toBe('CSV');
    expect(rangeHint({ minimum: 1, maximum: 1000 })).toBe('1 – 1,000');
    expect(rangeHint({ minimum: 0 })).toBe('at least 0');
    expect(rangeHint({ maximum: Number.MAX_SAFE_INTEGER })).toBe('');
  });
});

describe('the schema-to-form rules for the API\'s field errors', () => {
  it('places each error next to the type, under the JSON editor or next to its field; the rest stay unplaced', () => {
    expect(fieldOfPointer('/input/steps/0')).toBe('steps');
    expect(fieldOfPointer('/input/a~1b')).toBe('a/b');
    expect(fieldOfPointer('/type')).toBeNull();
    const errors = [
      { pointer: '/type', detail: 'unknown' },
      { pointer: '/input/steps', detail: 'too small' },
      { pointer: '/input/gone', detail: 'unknown field' },
      { pointer: '/priority', detail: 'not an integer' },
    ];
    const hasField = (name: string) => name === 'steps';
    expect(placeErrors(errors, { jsonMode: false, hasField })).toEqual({
      placed: [
        { at: 'type', message: 'unknown' },
        { at: 'field', field: 'steps', message: 'too small' },
      ],
      unplaced: ['/input/gone: unknown field', '/priority: not an integer'],
    });
    expect(placeErrors(errors, { jsonMode: true, hasField }).placed).toEqual([
      { at: 'type', message: 'unknown' },
      { at: 'json', message: 'steps: too small' },
      { at: 'json', message: 'gone: unknown field' },
    ]);
    expect(placeErrors([{ detail: 'bad' }], { jsonMode: false, hasField }).unplaced).toEqual(['request: bad']);
  });
});

const ID = (n: number) => `01a20cf1-3fb3-7f03-9811-8e0070b8f0${String(n).padStart(2, '0')}`;
const created = (n: number, fields: Record<string, unknown> = {}) => ({
  event_type: 'task_created',
  task_id: ID(n),
  seq: 0,
  timestamp: '2026-12-01T00:00:00.000Z',
  data: { task: snapshot({ task_id: ID(n), ...fields }) },
});
const ofTask = (n: number, seq: number, event_type: string, data: unknown) => ({ ...event(seq, event_type, data), task_id: ID(n) });

describe('the dashboard task list', () => {
  it('adds created tasks, applies their events, drops removed ones and never brings one back', () => {
    const list = new TaskList();
    expect(list.receive(created(1))).toEqual({ taskId: ID(1), structural: true });
    expect(list.receive(ofTask(1, 1, 'task_started', { attempt: 1, max_attempts: 1 }))).toEqual({ taskId: ID(1), structural: false });
    expect(list.receive(ofTask(1, 1, 'task_started', { attempt: 1, max_attempts: 1 }))).toBeNull();
    expect(list.get(ID(1))!.task.status).toBe('running');
    expect(list.receive(ofTask(9, 1, 'task_started', { attempt: 1, max_attempts: 1 }))).toBeNull();

    expect(list.receive({ event_type: 'task_removed', task_id: ID(1), seq: 0, timestamp: '', data: {} })).toEqual({ taskId: ID(1), structural: true });
    expect(list.has(ID(1))).toBe(false);
    expect(list.receive({ event_type: 'task_removed', task_id: ID(1), seq: 0, timestamp: '', data: {} })).toBeNull();
    expect(list.insert(snapshot({ task_id: ID(1) }))).toBe(false);
    expect(list.receive(created(1))).toBeNull();
  });

  it('holds stream events while a listing loads and applies them on top of it, in order', () => {
    const list = new TaskList();
    const load = list.startLoad();
    expect(list.loading).toBe(true);
    expect(list.receive(created(3))).toBeNull();
    expect(list.receive(ofTask(2, 4, 'task_completed', { result: 7 }))).toBeNull();
    expect(list.size).toBe(0);

    const listed = [snapshot({ task_id: ID(2), status: 'running', attempt: 1 }), snapshot({ task_id: ID(1) })];
    expect(list.finishLoad(load, { tasks: listed, next_cursor: 'more' })).toBe(true);
    expect(list.loading).toBe(false);
    expect(list.truncated).toBe(true);
    expect(list.idsNewestFirst()).toEqual([ID(3), ID(2), ID(1)]);
    expect(list.get(ID(2))!.task).toMatchObject({ status: 'completed', result: 7 });
  });

  it('uses only the newest load\'s answer, and none once cleared; a failed load keeps the list', () => {
    const list = new TaskList();
    list.insert(snapshot({ task_id: ID(1) }));
    const first = list.startLoad();
    const second = list.startLoad();
    expect(list.finishLoad(first, { tasks: [], next_cursor: null })).toBe(false);
    expect(list.loading).toBe(true);
    list.receive(created(2));
    expect(list.finishLoad(second, null)).toBe(true);
    expect(list.ids().sort()).toEqual([ID(1), ID(2)]);

    const third = list.startLoad();
    list.receive(created(4));
    list.clear();
    expect(list.loading).toBe(false);
    expect(list.finishLoad(third, { tasks: [snapshot({ task_id: ID(5) })], next_cursor: null })).toBe(false);
    expect(list.size).toBe(0);
    expect(list.insert(snapshot({ task_id: ID(1) }))).toBe(true);
  });

  it('counts tasks per status and under a filter', () => {
    const list = new TaskList();
    list.insert(snapshot({ task_id: ID(1), status: 'running' }));
    list.insert(snapshot({ task_id: ID(2), status: 'completed' }));
    list.insert(snapshot({ task_id: ID(3), status: 'completed' }));
    expect(list.counts()).toEqual({ queued: 0, running: 1, completed: 2, failed: 0, cancelled: 0 });
    expect(list.countShown('all')).toBe(3);
    expect(list.countShown('completed')).toBe(2);
    expect(list.countShown('failed')).toBe(0);
    expect(matchesFilter('running', 'all')).toBe(true);
    expect(matchesFilter('running', 'completed')).toBe(false);
  });
});

describe('how the dashboard words a task', () => {
  it('formats durations, roughly or precisely', () => {
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(185_000)).toBe('3 m 05 s');
    expect(formatDuration(7_620_000)).toBe('2 h 07 m');
    expect(formatDuration(-5)).toBe('0 s');
    expect(formatDuration(250, { precise: true })).toBe('250 ms');
    expect(formatDuration(4_230, { precise: true })).toBe('4.2 s');
    expect(shortId(ID(1))).toBe('70b8f001');
  });

  it('times a task waiting, running or ended, at the given server time', () => {
    const at = Date.parse('2026-12-01T00:01:00.000Z');
    expect(timing(snapshot({ created_at: '2026-12-01T00:00:30.000Z' }), at)).toEqual({ text: 'waiting 30 s', label: 'Waiting' });
    expect(timing(snapshot({ status: 'running', started_at: '2026-12-01T00:00:50.000Z' }), at)).toEqual({ text: '10 s', label: 'Running for' });
    const ended = snapshot({ status: 'completed', started_at: '2026-12-01T00:00:00.000Z', finished_at: '2026-12-01T00:00:01.500Z' });
    expect(timing(ended, at)).toEqual({ text: '1.5 s', label: 'Ran for' });
    expect(timing(snapshot({ status: 'cancelled' }), at)).toEqual({ text: '—', label: 'Never started' });
  });

  it('labels progress and notes the outcome', () => {
    expect(progressLabel(snapshot())).toBe('Waiting for a worker');
    expect(progressLabel(snapshot({ status: 'running', progress: { value: 0.456, text: 'Step 2/5', eta_ms: 3000 } }))).toBe('45 % · Step 2/5 · 3 s left');
    expect(progressLabel(snapshot({ status: 'running' }))).toBe('Working…');
    expect(progressLabel(snapshot({ status: 'completed', progress: { value: 0.9, text: 'done' } }))).toBe('100 % · done');
    expect(noteOf(snapshot({ status: 'failed', error: { code: 'timeout', message: 'too slow' } }))).toEqual({ text: 'too slow (timeout)', kind: 'error' });
    expect(noteOf(snapshot({ status: 'completed', result: { n: 1 } }))).toEqual({ text: 'Result: {"n":1}', kind: 'result' });
    expect(noteOf(snapshot({ status: 'cancelled', cancel_reason: 'shutdown' })).text).toBe('Cancelled when the service stopped');
    expect(noteOf(snapshot({ status: 'running', attempt: 2, max_attempts: 3 })).text).toBe('Attempt 2 of 3');
    expect(noteOf(snapshot({ status: 'completed' })).text).toBe('');
  });
});

describe('the server clock', () => {
  it('takes the largest skew sampled in a period, and keeps the last estimate through a period without samples', () => {
    let local = Date.parse('2026-12-01T00:00:00.000Z');
    const clock = new ServerClock(() => local);
    expect(clock.now()).toBe(local);
    clock.sample('2026-12-01T00:00:02.000Z');
    clock.sample('2026-12-01T00:00:05.000Z');
    clock.sample('not a date');
    expect(clock.now()).toBe(local);
    clock.update();
    expect(clock.now()).toBe(local + 5000);
    local += 1000;
    clock.update();
    expect(clock.now()).toBe(local + 5000);
    clock.sample('2026-12-01T00:00:00.000Z');
    clock.update();
    expect(clock.now()).toBe(local - 1000);
  });
});

describe('the stream\'s timing rules', () => {
  it('backs off by doubling up to a ceiling, and renews a token at 80 % of its life', () => {
    expect(nextReconnectDelayMs(1000)).toBe(2000);
    expect(nextReconnectDelayMs(RECONNECT_MAX_MS)).toBe(RECONNECT_MAX_MS);
    expect(renewalDelayMs(600_000)).toBe(480_000);
    expect(renewalDelayMs(-5)).toBe(1000);
    expect(renewalDelayMs(1e12)).toBe(2 ** 31 - 1);
  });

  it('counts a token\'s life by our clock unless the server\'s Date shows ours clearly wrong', () => {
    const local = Date.parse('2026-12-01T00:00:00.000Z');
    const expires = '2026-12-01T00:10:00.000Z';
    expect(tokenLifetimeMs(expires, 'Tue, 01 Dec 2026 00:00:01 GMT', local)).toBe(600_000);
    expect(tokenLifetimeMs(expires, 'Tue, 01 Dec 2026 00:05:00 GMT', local)).toBe(300_000);
    expect(tokenLifetimeMs(expires, null, local)).toBe(600_000);
  });

  it('opens a minted stream at its own URL, under the mount path, resuming after the last event', () => {
    expect(resumeUrl('/jobs/api/events?token=t', '42', 'http://host/jobs/')).toBe('/jobs/api/events?token=t&last_event_id=42');
    expect(resumeUrl('/api/events?token=t', '', 'http://host/')).toBe('/api/events?token=t');
  });
});

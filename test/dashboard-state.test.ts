// The dashboard's pure modules, without a browser: the event reducer and the schema-to-form rules.
import { describe, expect, it } from 'vitest';
import { controlKind, humanize, rangeHint } from '../web/schema-form.js';
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

import type { TaskRecord } from './task-record.ts';

/**
 * What MAX_RETAINED_BYTES counts: the UTF-8 length of a value as JSON, the form every
 * backend keeps it in (a string in memory, a Redis value) and sends it in.
 */
export const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? 'null');

/** The fields of a record that may be large (a body or a result): the rest is bounded and small. */
export const SIZED_FIELDS = ['input', 'result', 'error'] as const;

/** A record's share of the retained bytes: its input, result and error. */
export const recordBytes = (record: Pick<TaskRecord, (typeof SIZED_FIELDS)[number]>): number =>
  jsonBytes(record.input) + jsonBytes(record.result) + jsonBytes(record.error);

/**
 * The service-wide replay log's share of MAX_RETAINED_BYTES: a quarter. Only its own
 * trimming frees it (evicting a task does not), so the rest stays for the tasks.
 */
export const globalHistoryBytes = (maxRetainedBytes: number): number => Math.floor(maxRetainedBytes / 4);

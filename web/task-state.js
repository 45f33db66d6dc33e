// The event reducer of the dashboard: how one stream event changes a task as the page shows
// it. Pure (no DOM, no network), so it is tested without a browser.

export const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
/** `lastSeq` of a task known only from a snapshot: the list does not say which events it reflects. */
export const SEQ_UNKNOWN = -1;

/** A task as the page keeps it, from a snapshot: `{ task, lastSeq }`. */
export const entryOf = (snapshot, lastSeq = SEQ_UNKNOWN) => ({ task: { ...snapshot, cancel_reason: null }, lastSeq });

/**
 * Applies one event of the task's own sequence to its entry, idempotently; answers whether it
 * changed anything. An event at or below `lastSeq` is a duplicate. While a task is known only
 * from a snapshot, events the snapshot already reflects are recognised by what they would
 * undo: a start of an attempt already made, progress lower than shown, anything after the end.
 */
export function applyTaskEvent(entry, event) {
  const { event_type: type, seq, data } = event;
  const known = entry.lastSeq !== SEQ_UNKNOWN;
  if (known && seq <= entry.lastSeq) return false;
  const task = entry.task;
  if (TERMINAL.has(task.status)) return false;

  switch (type) {
    case 'task_started':
      if (!known && task.status === 'running' && task.attempt >= data.attempt) return false;
      task.status = 'running';
      task.attempt = data.attempt;
      task.max_attempts = data.max_attempts;
      task.started_at ??= event.timestamp;
      task.error = null;
      break;
    case 'progress_update': {
      const shown = task.progress?.value;
      if (!known && task.status === 'running' && data.value !== null && shown !== null && shown !== undefined && data.value < shown) {
        return false;
      }
      task.status = 'running';
      task.started_at ??= event.timestamp;
      task.progress = { ...task.progress, ...data };
      break;
    }
    case 'task_completed':
      Object.assign(task, { status: 'completed', result: data.result, finished_at: event.timestamp });
      break;
    case 'task_failed':
      Object.assign(task, { status: 'failed', error: data.error, finished_at: event.timestamp });
      break;
    case 'task_cancelled':
      Object.assign(task, { status: 'cancelled', cancel_reason: data.reason, finished_at: event.timestamp });
      break;
    default:
      return false;
  }
  entry.lastSeq = seq;
  return true;
}

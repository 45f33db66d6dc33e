// How the dashboard words a task: durations, progress, notes, ids. Pure (no DOM, no clock of
// its own: the time is passed in), so it is tested without a browser.

export const STATUS_LABELS = {
  queued: 'Queued',
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** `12 s`, `3 m 05 s`, `2 h 07 m`; with `precise`, `250 ms` and `4.2 s` below 10 s. */
export function formatDuration(ms, { precise = false } = {}) {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 1 && precise) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10 && precise) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} m`;
}

// A UUIDv7 starts with its creation time, shared by tasks created together: its random end
// tells them apart.
export const shortId = (taskId) => taskId.slice(-8);
export const percent = (value) => `${Math.floor(value * 100)} %`;
export const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

/** Run time so far (running), in all (ended), or time waiting (queued), at server time `now`. */
export function timing(task, now) {
  const started = Date.parse(task.started_at);
  const finished = Date.parse(task.finished_at);
  if (task.status === 'queued') return { text: `waiting ${formatDuration(now - Date.parse(task.created_at))}`, label: 'Waiting' };
  if (task.status === 'running') return { text: formatDuration(now - started), label: 'Running for' };
  if (Number.isFinite(started) && Number.isFinite(finished)) return { text: formatDuration(finished - started, { precise: true }), label: 'Ran for' };
  return { text: '—', label: 'Never started' };
}

/** The line under a task: its error, result, attempt or why it was cancelled. */
export function noteOf(task) {
  if (task.status === 'failed' && task.error) return { text: `${task.error.message} (${task.error.code})`, kind: 'error' };
  if (task.status === 'cancelled' && task.cancel_reason === 'shutdown') return { text: 'Cancelled when the service stopped', kind: 'muted' };
  if (task.status === 'completed' && task.result !== undefined && task.result !== null) {
    return { text: `Result: ${JSON.stringify(task.result)}`, kind: 'result' };
  }
  if (task.max_attempts > 1 && task.attempt > 0) return { text: `Attempt ${task.attempt} of ${task.max_attempts}`, kind: 'muted' };
  return { text: '', kind: 'muted' };
}

/** The text beside the progress bar: `40 % · Step 2/5 · 3 s left`. */
export function progressLabel(task) {
  const { value, text, eta_ms: etaMs } = task.progress ?? {};
  const parts = [];
  if (task.status === 'queued') return 'Waiting for a worker';
  if (task.status === 'completed') parts.push('100 %');
  else if (typeof value === 'number') parts.push(percent(value));
  if (text) parts.push(text);
  if (task.status === 'running' && typeof etaMs === 'number') parts.push(`${formatDuration(etaMs)} left`);
  if (!parts.length) return task.status === 'running' ? 'Working…' : '';
  return parts.join(' · ');
}

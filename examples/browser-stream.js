/**
 * Follows one task's stream: reports each progress update, then the terminal event, and
 * closes. If the connection drops, EventSource reconnects by itself with `Last-Event-ID` and
 * the stream resumes after that event, with no duplicates and no gaps.
 */
export function watchTask(streamUrl, { onProgress, onEnd, onError = () => {} }, EventSourceImpl = globalThis.EventSource) {
  const source = new EventSourceImpl(streamUrl);
  source.addEventListener('progress_update', (e) => {
    onProgress(JSON.parse(e.data).data); // { value: 0..1 | null, text, step, total_steps, eta_ms }
  });
  for (const type of ['task_completed', 'task_failed', 'task_cancelled']) {
    source.addEventListener(type, (e) => {
      source.close(); // the terminal event is always the last; closing also stops reconnects
      onEnd(type, JSON.parse(e.data).data);
    });
  }
  source.addEventListener('error', () => {
    // While reconnecting readyState is CONNECTING; CLOSED means it gave up (e.g. 404: the
    // task is unknown or was evicted).
    if (source.readyState === source.CLOSED) onError();
  });
  return source;
}

// In a page:
// watchTask(task.stream_url, {
//   onProgress: ({ value, text }) => { bar.value = value ?? 0; label.textContent = text ?? ''; },
//   onEnd: (type, data) => console.log(type, data),
// });

// SSE frames shaped like the service's (same headers, same envelope), for the raw baselines.

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const;

export const RETRY_FRAME = 'retry: 3000\n\n';

/** One event frame: `id:`, `event:` and one `data:` line with the JSON envelope. */
export function sseFrame(id: number, eventType: string, taskId: string, seq: number, data: unknown): string {
  const json = JSON.stringify({ event_type: eventType, task_id: taskId, seq, timestamp: new Date().toISOString(), data });
  return `id: ${id}\nevent: ${eventType}\ndata: ${json}\n\n`;
}

/** The `data` of a progress_update, as the service sends it. */
export const progressData = (value: number | null, text: string) => ({
  value,
  text,
  step: null,
  total_steps: null,
  eta_ms: null,
});

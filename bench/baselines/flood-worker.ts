// The raw fan-out baseline's event source: posts `count` messages from a worker thread, as
// bench_flood reports progress, then an end marker (messages and the return value travel
// on different channels, so the marker says when the last message is in).
import { parentPort } from 'node:worker_threads';

export type FloodMessage = { kind: 'progress'; index: number } | { kind: 'end' };

export default function flood({ count }: { count: number }): Record<string, never> {
  for (let index = 1; index <= count; index++) parentPort!.postMessage({ kind: 'progress', index } satisfies FloodMessage);
  parentPort!.postMessage({ kind: 'end' } satisfies FloodMessage);
  return {};
}

import type { MemoryReply } from './memory-protocol.ts';
import type { Violations } from './violations.ts';

export interface MemoryFigures {
  /** After the warm-up, with every warm-up task deleted: a working, empty service. */
  before: MemoryReply | undefined;
  /** After the run, with every task deleted and every stream closed. */
  after: MemoryReply | undefined;
  peakRssBytes: number | undefined;
}

const MiB = 1024 * 1024;
/**
 * What an empty service may keep beyond its baseline: the service-wide replay log stays
 * (up to 2 × EVENT_HISTORY events), and V8 keeps some compiled code and caches.
 */
const HEAP_ALLOWANCE_BYTES = 24 * MiB;
/** Resident memory also counts worker threads started to replace crashed ones, and allocator slack. */
const RSS_ALLOWANCE_BYTES = 96 * MiB;

/** Memory after a forced full GC must be back near its baseline: no task, stream or timer kept alive. */
export function checkMemory({ before, after }: MemoryFigures, violations: Violations): void {
  if (!before || !after) {
    violations.add('memory', 'not measured');
    return;
  }
  const heapGrowth = after.heapUsedBytes - before.heapUsedBytes;
  if (heapGrowth > HEAP_ALLOWANCE_BYTES) {
    violations.add('memory', `heap grew by ${(heapGrowth / MiB).toFixed(1)} MiB over the run (at most ${HEAP_ALLOWANCE_BYTES / MiB} MiB)`);
  }
  const rssGrowth = after.rssBytes - before.rssBytes;
  if (rssGrowth > RSS_ALLOWANCE_BYTES) {
    violations.add('memory', `RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB over the run (at most ${RSS_ALLOWANCE_BYTES / MiB} MiB)`);
  }
}

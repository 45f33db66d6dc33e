import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * This process's memory (resident, and V8's heap within it) after a full collection, so that garbage waiting to be
 * collected does not count as memory in use. Needs `--expose-gc`.
 */
export async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the process with --expose-gc to measure memory');
  for (let i = 0; i < 3; i++) {
    gc();
    await nextTurn();
  }
  return process.memoryUsage();
}

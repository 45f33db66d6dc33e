// Figure 1's baseline: how fast bare Piscina runs a no-op, in a process of its own.
import { rawPool } from '../lib/raw-pool.ts';
import { serveCommands } from '../lib/rpc.ts';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const pool = rawPool(new URL('./noop-worker.ts', import.meta.url), threads);

export interface MeasureArgs {
  /** Tasks kept in flight, as the service's clients keep as many requests open. */
  concurrency: number;
  warmupMs: number;
  measureMs: number;
}

/** Runs no-ops with `concurrency` in flight; counts those that end inside the window. */
async function measure({ concurrency, warmupMs, measureMs }: MeasureArgs) {
  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + measureMs;
  let counted = 0;
  const loop = async () => {
    while (performance.now() < windowEnd) {
      await pool.run({});
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) counted++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { rate: counted / (measureMs / 1000) };
}

const commands = { measure };
export type RawPiscinaCommands = typeof commands;

// Start every thread before announcing readiness, so start-up is not measured.
await Promise.all(Array.from({ length: threads * 4 }, () => pool.run({})));
serveCommands(commands);

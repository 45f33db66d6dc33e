import { z } from 'zod';
import { defineTask } from '../../workers/define.ts';

/** Reports `count` progress updates back to back, then returns: one task's events to fan out. */
export default defineTask({
  type: 'bench_flood',
  description: 'Benchmark: reports progress `count` times as fast as it can.',
  input: z.object({ count: z.int().min(1).max(1_000_000) }),
  result: z.object({ sent: z.int() }),
  example: { count: 100 },
  run({ count }, ctx) {
    for (let i = 1; i <= count; i++) ctx.progress(i / count, `${i}`);
    return { sent: count };
  },
});

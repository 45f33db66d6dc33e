import { z } from 'zod';
import { defineTask } from '../../workers/define.ts';

/**
 * Reports one progress update whose text is the time it was sent, from the monotonic clock
 * (process.hrtime): on Linux that clock is one for the whole machine, so a client in
 * another process can subtract it from its own reading.
 */
export default defineTask({
  type: 'bench_stamp',
  description: 'Benchmark: reports progress once, stamped with the monotonic clock in ns.',
  input: z.object({}),
  result: z.object({}),
  example: {},
  run(_input, ctx) {
    ctx.progress(null, process.hrtime.bigint().toString());
    return {};
  },
});

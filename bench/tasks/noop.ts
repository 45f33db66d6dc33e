import { z } from 'zod';
import { defineTask } from '../../workers/define.ts';

/** Does nothing: what is left to measure is the service around it. */
export default defineTask({
  type: 'bench_noop',
  description: 'Benchmark: returns at once.',
  input: z.object({}),
  result: z.object({}),
  example: {},
  run: () => ({}),
});

import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineTask } from '../define.ts';

export default defineTask({
  type: 'sample',
  description:
    'Walks through `steps` steps of `step_ms` milliseconds each, reporting progress after every step. Fails at `fail_at_step` when given.',
  input: z.strictObject({
    steps: z.int().min(1).max(1000).default(5).describe('How many steps to run'),
    step_ms: z.int().min(0).max(60_000).default(1000).describe('Milliseconds per step'),
    fail_at_step: z.int().min(1).optional().describe('Throw an error at this step'),
  }),
  result: z.object({ steps_completed: z.int().min(0) }),
  example: { steps: 5, step_ms: 1000 },
  async run({ steps, step_ms, fail_at_step }, ctx) {
    for (let step = 1; step <= steps; step++) {
      await sleep(step_ms, undefined, { signal: ctx.signal });
      if (step === fail_at_step) throw new Error(`Step ${step} failed as requested`);
      ctx.progress({ step, total_steps: steps, text: `Step ${step}/${steps}` });
    }
    return { steps_completed: steps };
  },
});

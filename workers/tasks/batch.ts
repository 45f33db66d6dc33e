import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineTask } from '../define.ts';

const MAX_ITEMS = 10_000;

const operations = {
  sha256: (item: string) => createHash('sha256').update(item).digest('hex'),
  md5: (item: string) => createHash('md5').update(item).digest('hex'),
  length: (item: string) => String([...item].length),
  word_count: (item: string) => String(item.split(/\s+/).filter(Boolean).length),
  uppercase: (item: string) => item.toUpperCase(),
} satisfies Record<string, (item: string) => string>;

export default defineTask({
  type: 'batch',
  description:
    'Applies one operation to each item of a list, reporting one progress step per item and a result per item. Stops between items when cancelled; an item that fails does not stop the others.',
  input: z.strictObject({
    items: z.array(z.string().max(100_000)).min(1).max(MAX_ITEMS).describe(`Up to ${MAX_ITEMS} items`),
    operation: z.enum(Object.keys(operations) as [keyof typeof operations, ...(keyof typeof operations)[]]),
    item_ms: z.int().min(0).max(60_000).default(0).describe('Pause after each item, to pace the batch'),
  }),
  result: z.object({
    processed: z.int(),
    failed: z.int(),
    items: z.array(
      z.object({ index: z.int(), ok: z.boolean(), output: z.string().nullable(), error: z.string().nullable() }),
    ),
  }),
  example: { items: ['alpha', 'beta', 'gamma'], operation: 'sha256', item_ms: 0 },
  async run({ items, operation, item_ms }, ctx) {
    const apply = operations[operation];
    const results = [];
    let failed = 0;
    for (const [index, item] of items.entries()) {
      ctx.signal.throwIfAborted();
      try {
        results.push({ index, ok: true, output: apply(item), error: null });
      } catch (error) {
        failed++;
        results.push({ index, ok: false, output: null, error: error instanceof Error ? error.message : String(error) });
      }
      ctx.progress({ step: index + 1, total_steps: items.length, text: `Item ${index + 1}/${items.length}` });
      if (item_ms > 0 && index < items.length - 1) await sleep(item_ms, undefined, { signal: ctx.signal });
    }
    return { processed: items.length, failed, items: results };
  },
});

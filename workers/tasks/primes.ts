import { z } from 'zod';
import { defineTask } from '../define.ts';

const SEGMENT_SIZE = 1 << 18; // odd numbers per segment: a few hundred microseconds of work
const PROGRESS_UPDATES = 100;

/** Odd primes up to `limit` by a simple sieve: the base primes of the segmented sieve. */
function basePrimes(limit: number): number[] {
  const composite = new Uint8Array(limit + 1);
  const primes: number[] = [];
  for (let n = 3; n <= limit; n += 2) {
    if (composite[n]) continue;
    primes.push(n);
    for (let m = n * n; m <= limit; m += 2 * n) composite[m] = 1;
  }
  return primes;
}

export default defineTask({
  type: 'primes',
  description:
    'Counts the primes below `limit` with a segmented sieve of Eratosthenes. CPU-bound; stops promptly when cancelled.',
  input: z.strictObject({
    limit: z
      .int()
      .min(2)
      .max(100_000_000_000)
      .describe('Count primes strictly below this number'),
  }),
  result: z.object({ count: z.int().min(0) }),
  example: { limit: 100_000_000 },
  run({ limit }, ctx) {
    // Count 2 separately, then sieve odd numbers in [3, limit) one segment at a time.
    let count = limit > 2 ? 1 : 0;
    const base = basePrimes(Math.floor(Math.sqrt(limit)) + 1);
    // Sized to the range when that is smaller: a small limit allocates a few bytes, not 256 KiB.
    const segment = new Uint8Array(Math.min(SEGMENT_SIZE, Math.ceil(limit / 2)));
    const progressEvery = Math.max(1, Math.floor((limit - 3) / PROGRESS_UPDATES));
    let nextProgressAt = 3 + progressEvery;

    for (let low = 3; low < limit; low += 2 * SEGMENT_SIZE) {
      // A synchronous loop: the signal reads shared memory, so this sees a cancel at once.
      ctx.signal.throwIfAborted();
      const high = Math.min(limit, low + 2 * SEGMENT_SIZE); // exclusive
      segment.fill(0);
      for (const p of base) {
        const square = p * p;
        if (square >= high) break;
        let start = square >= low ? square : Math.ceil(low / p) * p;
        if (start % 2 === 0) start += p;
        for (let m = start; m < high; m += 2 * p) segment[(m - low) >> 1] = 1;
      }
      const odds = (high - low + 1) >> 1;
      for (let i = 0; i < odds; i++) if (segment[i] === 0) count++;
      if (high >= nextProgressAt || high >= limit) {
        ctx.progress(Math.min(1, (high - 3) / Math.max(1, limit - 3)), `Sieved up to ${high}`);
        nextProgressAt = high + progressEvery;
      }
    }
    return { count };
  },
});

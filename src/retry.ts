/**
 * Delay before attempt `nextAttempt` (2 = first retry): exponential from `baseMs`, with
 * "equal jitter" (half fixed, half random) so retries of many tasks do not line up.
 */
export function retryDelayMs(baseMs: number, nextAttempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(baseMs * 2 ** (nextAttempt - 2), 2_147_483_647);
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

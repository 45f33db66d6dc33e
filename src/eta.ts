/** Needs this long between the first and the latest sample before it estimates anything. */
const MIN_SPAN_MS = 250;

/**
 * Estimates time left from the progress rate observed since a task's first progress in
 * its current attempt. Null until progress has moved forward over a meaningful span.
 */
export class EtaEstimator {
  readonly #first = new Map<string, { at: number; value: number }>();

  /** Forgets a task's samples (a new attempt, or the end). */
  reset(taskId: string): void {
    this.#first.delete(taskId);
  }

  estimate(taskId: string, value: number | null, now: number): number | null {
    if (value === null) return null;
    const first = this.#first.get(taskId);
    if (!first) {
      this.#first.set(taskId, { at: now, value });
      return null;
    }
    const span = now - first.at;
    const moved = value - first.value;
    if (span < MIN_SPAN_MS || moved <= 0) return null;
    return Math.round(((1 - value) * span) / moved);
  }
}

// The server's clock as the page estimates it, so elapsed times agree with the server's
// timestamps. Pure: the local clock is injected, so it is tested without a browser.

/**
 * Each event gives a lower bound of the server's clock minus ours (it was sent before it
 * arrived, and replayed events are older still), so the estimate is the largest sample of the
 * last period: `sample()` per event, `update()` once a period.
 */
export class ServerClock {
  #localNow;
  #skewMs = 0;
  #sample = -Infinity;

  constructor(localNow = Date.now) {
    this.#localNow = localNow;
  }

  /** Ms since the epoch by the server's clock, as estimated. */
  now() {
    return this.#localNow() + this.#skewMs;
  }

  /** Takes an event's ISO timestamp into the current period's estimate. */
  sample(timestamp) {
    const sample = Date.parse(timestamp) - this.#localNow();
    if (Number.isFinite(sample) && sample > this.#sample) this.#sample = sample;
  }

  /** Ends a period: the estimate becomes its largest sample, if it had any. */
  update() {
    if (this.#sample !== -Infinity) this.#skewMs = this.#sample;
    this.#sample = -Infinity;
  }
}

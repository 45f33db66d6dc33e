import { readFileSync } from 'node:fs';

interface CpuTimes {
  steal: number;
  total: number;
}

function read(): CpuTimes | undefined {
  try {
    // The first line of /proc/stat sums every CPU: user nice system idle iowait irq softirq steal ...
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return { steal: fields[7] ?? 0, total: fields.reduce((sum, value) => sum + value, 0) };
  } catch {
    return undefined; // not Linux
  }
}

/**
 * Measures the share of CPU time the hypervisor gave to other guests ("steal") while the
 * run went on: when it is high, the machine was slower than usual in bursts, and the
 * product and its baseline may have met different bursts.
 */
export class StealMeter {
  readonly #start = read();

  /** Steal as a fraction of all CPU time since construction; NaN where unknown. */
  fraction(): number {
    const end = read();
    if (!this.#start || !end || end.total === this.#start.total) return Number.NaN;
    return (end.steal - this.#start.steal) / (end.total - this.#start.total);
  }
}

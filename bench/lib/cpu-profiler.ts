import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * Profiles this process's main thread between start() and stop(), so a profile covers one
 * measurement and not the start-up before it. Writes the V8 .cpuprofile format that
 * `node --cpu-prof` writes and Chrome DevTools opens.
 */
export class CpuProfiler {
  #inspector: Session | undefined;

  async start(): Promise<void> {
    if (this.#inspector) return;
    const inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
    await inspector.post('Profiler.start');
    this.#inspector = inspector;
  }

  async stop(file: string): Promise<void> {
    const inspector = this.#inspector;
    if (!inspector) return;
    this.#inspector = undefined;
    const { profile } = await inspector.post('Profiler.stop');
    inspector.disconnect();
    writeFileSync(file, JSON.stringify(profile));
  }
}

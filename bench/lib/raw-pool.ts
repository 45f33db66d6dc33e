import { Piscina } from 'piscina';

/**
 * A Piscina pool set up as the service sets up its own (fixed thread count, threads kept,
 * one task per thread), for the raw baselines. Worker threads inherit this process's
 * Node options, tsx among them, so they can load a .ts worker.
 */
export function rawPool(workerUrl: URL, threads: number): Piscina {
  return new Piscina({
    filename: workerUrl.href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    concurrentTasksPerWorker: 1,
  });
}

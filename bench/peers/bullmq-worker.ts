// The BullMQ peer's worker, in a process of its own as a BullMQ deployment runs it: a Worker
// with the service's concurrency whose jobs do nothing, or report progress `progress` times.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { serveCommands } from '../lib/rpc.ts';

const url = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BENCH_BULLMQ_PREFIX ?? 'bench';
const concurrency = Number(process.env.BENCH_THREADS ?? 2);
const queueName = process.env.BENCH_BULLMQ_QUEUE ?? 'noop';

// Workers block on Redis: BullMQ requires maxRetriesPerRequest null for them.
const connection = new Redis(url, { maxRetriesPerRequest: null });
const worker = new Worker<{ progress: number }>(
  queueName,
  async (job) => {
    for (let i = 1; i <= job.data.progress; i++) await job.updateProgress(i / job.data.progress);
    return {};
  },
  { connection, prefix, concurrency, autorun: false, removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
);
worker.on('error', (error) => console.error(`bullmq worker: ${error.message}`));

let started = false;

/**
 * Takes jobs (starting or resuming the worker); with `count`, resolves once that many have
 * completed, with the time it took.
 */
async function run({ count }: { count?: number }) {
  const begin = performance.now();
  let completed = 0;
  let onCompleted: (() => void) | undefined;
  const done =
    count === undefined
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          onCompleted = () => {
            if (++completed === count) resolve();
          };
          worker.on('completed', onCompleted);
        });
  if (started) worker.resume();
  else {
    started = true;
    void worker.run();
  }
  await done;
  if (onCompleted) worker.off('completed', onCompleted);
  return { ms: performance.now() - begin, completed };
}

/** Stops taking jobs once the active ones are done. */
async function pause() {
  if (started) await worker.pause();
  return {};
}

async function stop() {
  await worker.close();
  await connection.quit();
  return {};
}

const commands = { run, pause, stop };
export type BullmqWorkerCommands = typeof commands;
serveCommands(commands, { pid: process.pid });

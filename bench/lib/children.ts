// Starting the bench's processes, each with the commands and ready message it declares.
import { join } from 'node:path';
import type { HonoPostServerCommands } from '../baselines/hono-post-server.ts';
import type { RawPiscinaCommands } from '../baselines/raw-piscina.ts';
import type { RawPipelineServerCommands } from '../baselines/raw-pipeline-server.ts';
import type { RawSseServerCommands } from '../baselines/raw-sse-server.ts';
import type { LatencyProbeCommands } from '../load/latency-probe.ts';
import type { SubscribersCommands } from '../load/subscribers.ts';
import type { TaskLoopCommands } from '../load/task-loop.ts';
import type { BullmqClientCommands } from '../peers/bullmq-client.ts';
import type { BullmqWorkerCommands } from '../peers/bullmq-worker.ts';
import type { TaskstreamServerCommands } from '../servers/taskstream-server.ts';
import { BenchChild, type ChildOptions } from './bench-child.ts';

export interface ServerReady {
  url: string;
}

const at = (path: string) => new URL(`../${path}`, import.meta.url);

/** Settings every process of a run shares. */
export interface RunOptions {
  /** Worker threads, for the service and the raw Piscina baselines alike. */
  threads: number;
  /** Where to write a CPU profile of the service's main thread per measurement; none if unset. */
  profileDir?: string | undefined;
  /** Progress notes, to stderr: which measurement is running. */
  log: (message: string) => void;
  /** The Redis the BullMQ peer runs on; undefined when none answered (its figures are skipped). */
  redisUrl?: string | undefined;
}

/** The service in its own process; `env` uses the service's own variable names. */
export const startTaskstream = (run: RunOptions, env: Record<string, string>) =>
  new BenchChild<TaskstreamServerCommands, ServerReady>(at('servers/taskstream-server.ts'), {
    env: { BENCH_SERVICE_ENV: JSON.stringify({ MAX_WORKERS: String(run.threads), ...env }) },
  });

/** Runs `measure` with the service's main thread profiled, when profiles are asked for. */
export async function profiled<T>(
  run: RunOptions,
  service: ReturnType<typeof startTaskstream>,
  name: string,
  measure: () => Promise<T>,
): Promise<T> {
  if (!run.profileDir) return measure();
  await service.call('startProfile', undefined, 10_000);
  try {
    return await measure();
  } finally {
    await service.call('stopProfile', { file: join(run.profileDir, `${name}.cpuprofile`) }, 30_000);
    run.log(`profile written: ${join(run.profileDir, `${name}.cpuprofile`)}`);
  }
}

const threadsEnv = (run: RunOptions): ChildOptions => ({ env: { BENCH_THREADS: String(run.threads) } });

export const startRawPiscina = (run: RunOptions) =>
  new BenchChild<RawPiscinaCommands>(at('baselines/raw-piscina.ts'), threadsEnv(run));
export const startRawPipelineServer = (run: RunOptions) =>
  new BenchChild<RawPipelineServerCommands, ServerReady>(at('baselines/raw-pipeline-server.ts'), threadsEnv(run));
export const startHonoPostServer = () =>
  new BenchChild<HonoPostServerCommands, ServerReady>(at('baselines/hono-post-server.ts'));
export const startRawSseServer = (run: RunOptions) =>
  new BenchChild<RawSseServerCommands, ServerReady>(at('baselines/raw-sse-server.ts'), threadsEnv(run));

export const startTaskLoop = () => new BenchChild<TaskLoopCommands>(at('load/task-loop.ts'));
export const startSubscribers = () => new BenchChild<SubscribersCommands>(at('load/subscribers.ts'));
export const startLatencyProbe = () => new BenchChild<LatencyProbeCommands>(at('load/latency-probe.ts'));

/** Closes every child given, even if some fail to close. */
export async function closeAll(children: readonly (BenchChild<any, any> | undefined)[]): Promise<void> {
  await Promise.allSettled(children.map((child) => child?.close()));
}

/** The BullMQ peer: `queue` names its own queue (and its keys) for one phase. */
const bullmqEnv = (run: RunOptions, queue: string): ChildOptions => ({
  env: {
    BENCH_THREADS: String(run.threads),
    BENCH_REDIS_URL: run.redisUrl ?? '',
    BENCH_BULLMQ_PREFIX: `bench-${process.pid}`,
    BENCH_BULLMQ_QUEUE: queue,
  },
});
export const startBullmqWorker = (run: RunOptions, queue: string) =>
  new BenchChild<BullmqWorkerCommands, { pid: number }>(at('peers/bullmq-worker.ts'), bullmqEnv(run, queue));
export const startBullmqClient = (run: RunOptions, queue: string) =>
  new BenchChild<BullmqClientCommands>(at('peers/bullmq-client.ts'), bullmqEnv(run, queue));

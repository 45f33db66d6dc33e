// The BullMQ peer's client: `lanes` concurrent submitters each add a job, wait for its
// completion through QueueEvents, and add the next; or a bulk pre-fill for the execution
// figure. Reads the CPU time of itself, the worker and Redis at the window's edges.
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { cpuBetween, snapshotCpu, type CpuSnapshot } from '../lib/proc-cpu.ts';
import { redisCommands } from '../lib/redis-stats.ts';
import { serveCommands } from '../lib/rpc.ts';

const url = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BENCH_BULLMQ_PREFIX ?? 'bench';
const queueName = process.env.BENCH_BULLMQ_QUEUE ?? 'noop';

const connection = new Redis(url, { maxRetriesPerRequest: null });
const eventsConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue(queueName, { connection, prefix });
const events = new QueueEvents(queueName, { connection: eventsConnection, prefix });
await events.waitUntilReady();

/** Redis's own CPU time (INFO cpu), in microseconds: its process may be out of reach. */
async function redisCpuUs(): Promise<number> {
  const info = await connection.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1_000_000;
}


export interface LoopArgs {
  lanes: number;
  warmupMs: number;
  measureMs: number;
  /** Progress updates per job. */
  progress: number;
  /** Other processes whose CPU is read at the window's edges (the worker). */
  cpuPids: number[];
}

async function loop({ lanes, warmupMs, measureMs, progress, cpuPids }: LoopArgs) {
  const waiting = new Map<string, () => void>();
  const early = new Set<string>();
  let inWindow = false;
  let progressInWindow = 0;
  const onCompleted = ({ jobId }: { jobId: string }) => {
    const waiter = waiting.get(jobId);
    if (waiter) {
      waiting.delete(jobId);
      waiter();
    } else {
      early.add(jobId);
    }
  };
  const onProgress = () => {
    if (inWindow) progressInWindow++;
  };
  events.on('completed', onCompleted);
  events.on('progress', onProgress);
  const completion = (jobId: string) =>
    new Promise<void>((resolve) => {
      if (early.delete(jobId)) resolve();
      else waiting.set(jobId, resolve);
    });

  const pids = [process.pid, ...cpuPids];
  const windowStart = performance.now() + warmupMs;
  const windowEnd = windowStart + measureMs;
  let counted = 0;
  let cpuStart: CpuSnapshot | undefined;
  let cpuEnd: CpuSnapshot | undefined;
  let redisStart = 0;
  let redisEnd = 0;
  let commandsStart = 0;
  let commandsEnd = 0;
  const edges = [
    setTimeout(async () => {
      inWindow = true;
      cpuStart = snapshotCpu(pids);
      [redisStart, commandsStart] = await Promise.all([redisCpuUs(), redisCommands(connection)]);
    }, warmupMs),
    setTimeout(async () => {
      inWindow = false;
      cpuEnd = snapshotCpu(pids);
      [redisEnd, commandsEnd] = await Promise.all([redisCpuUs(), redisCommands(connection)]);
    }, warmupMs + measureMs),
  ];
  const lane = async () => {
    while (performance.now() < windowEnd) {
      const job = await queue.add('noop', { progress }, { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } });
      await completion(job.id!);
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) counted++;
    }
  };
  try {
    await Promise.all(Array.from({ length: lanes }, lane));
    // The INFO reads at the edges are in flight until answered.
    while (commandsEnd === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    edges.forEach(clearTimeout);
    events.off('completed', onCompleted);
    events.off('progress', onProgress);
  }
  const cpu = cpuStart && cpuEnd ? cpuBetween(cpuStart, cpuEnd) : [];
  return {
    rate: counted / (measureMs / 1000),
    progressRate: progressInWindow / (measureMs / 1000),
    tasks: counted,
    cpu,
    redisCpuUs: redisEnd - redisStart,
    // Every client of this Redis counts here: meaningful only when nothing else uses it.
    redisCommands: commandsEnd - commandsStart,
  };
}

/** Adds `count` no-op jobs in bulk, for the worker to drain. */
async function prefill({ count }: { count: number }) {
  for (let done = 0; done < count; done += 1000) {
    const size = Math.min(1000, count - done);
    await queue.addBulk(
      Array.from({ length: size }, () => ({
        name: 'noop',
        data: { progress: 0 },
        opts: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
      })),
    );
  }
  return {};
}

/** Deletes every key of this queue: the Redis is shared. */
async function cleanup() {
  await queue.obliterate({ force: true });
  return {};
}

async function stop() {
  await events.close();
  await queue.close();
  await Promise.all([connection.quit(), eventsConnection.quit()]);
  return {};
}

const commands = { loop, prefill, cleanup, stop };
export type BullmqClientCommands = typeof commands;
serveCommands(commands);

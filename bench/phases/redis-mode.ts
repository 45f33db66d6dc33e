// Figures 8: Redis mode, end to end. The service with REDIS_URL, one instance and then two
// on the same Redis and prefix, against BullMQ alone (a Queue, a Worker doing nothing,
// completion seen through QueueEvents) on the same Redis in the same run. Submitters create a
// trivial task and wait for its end on /api/events; with two instances, half of them use
// each. Redis commands per task come from INFO stats at the window's edges (every client of
// the Redis counts, so the figure is only meaningful on a Redis nothing else uses).
import { deleteKeys, openRedis } from '../../test/helpers/redis.ts';
import { closeAll, profiled, startBullmqClient, startBullmqWorker, startTaskLoop, startTaskstream, type RunOptions } from '../lib/children.ts';

export interface RedisModeSettings {
  clients: number;
  firstRunMs: number;
  warmupMs: number;
  measureMs: number;
  trials: number;
}

export interface RedisModeTrial {
  rate: number;
  tasks: number;
  commandsPerTask: number;
}

const BODY = JSON.stringify({ type: 'bench_noop', input: {} });

export async function measureRedisMode(run: RunOptions, settings: RedisModeSettings) {
  const redisUrl = run.redisUrl;
  if (!redisUrl) return undefined;
  const { clients, firstRunMs, warmupMs, measureMs, trials } = settings;
  const callMs = warmupMs + Math.max(firstRunMs, measureMs) + 30_000;
  const prefix = `bench-redis-mode-${process.pid}`;
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, MAX_QUEUE: '1000000', RETENTION_MS: '1000', HEARTBEAT_MS: '600000' };
  const instances = [startTaskstream(run, env), startTaskstream(run, env)];
  const loops = [startTaskLoop(), startTaskLoop()];
  const peer = { worker: startBullmqWorker(run, 'redis-mode'), client: startBullmqClient(run, 'redis-mode') };
  const result = { one: [] as RedisModeTrial[], two: [] as RedisModeTrial[], bullmq: [] as RedisModeTrial[] };
  try {
    const ready = await Promise.all(instances.map((instance) => instance.ready));
    await Promise.all([...loops.map((loop) => loop.ready), peer.worker.ready, peer.client.ready]);
    await peer.worker.call('run', {}, 10_000);
    const ours = async (count: 1 | 2, windowMs: number): Promise<RedisModeTrial> => {
      const lanes = count === 1 ? [clients] : [clients / 2, clients / 2];
      const results = await Promise.all(
        lanes.map((lane, index) =>
          loops[index]!.call(
            'run',
            { baseUrl: ready[index]!.url, body: BODY, clients: lane, warmupMs, measureMs: windowMs, ...(index === 0 ? { redisUrl } : {}) },
            callMs,
          ),
        ),
      );
      const tasks = results.reduce((sum, trial) => sum + trial.tasks, 0);
      return { rate: tasks / (windowMs / 1000), tasks, commandsPerTask: (results[0]!.redisCommands ?? Number.NaN) / Math.max(1, tasks) };
    };
    const theirs = async (windowMs: number): Promise<RedisModeTrial> => {
      const trial = await peer.client.call('loop', { lanes: clients, warmupMs, measureMs: windowMs, progress: 0, cpuPids: [] }, callMs);
      return { rate: trial.rate, tasks: trial.tasks, commandsPerTask: trial.redisCommands / Math.max(1, trial.tasks) };
    };

    // Two instances first, then one: the second is closed, so its worker takes no jobs.
    run.log('Redis mode, two instances, first run');
    await ours(2, firstRunMs);
    await theirs(firstRunMs);
    for (let trial = 0; trial < trials; trial++) {
      run.log(`Redis mode, two instances, trial ${trial + 1}`);
      result.two.push(await ours(2, measureMs));
      result.bullmq.push(await theirs(measureMs));
    }
    await instances[1]!.close();
    run.log('Redis mode, one instance, first run');
    await ours(1, firstRunMs);
    for (let trial = 0; trial < trials; trial++) {
      run.log(`Redis mode, one instance, trial ${trial + 1}`);
      result.one.push(await profiled(run, instances[0]!, `redis-mode-one-${trial + 1}`, () => ours(1, measureMs)));
      result.bullmq.push(await theirs(measureMs));
    }
    await peer.client.call('cleanup', undefined, 30_000);
    return result;
  } finally {
    await Promise.allSettled([peer.worker.call('stop', undefined, 10_000), peer.client.call('stop', undefined, 10_000)]);
    await closeAll([...instances, ...loops, peer.worker, peer.client]);
    const redis = await openRedis(redisUrl);
    await deleteKeys(redis, prefix).finally(() => redis.disconnect());
  }
}

/**
 * Measures how long Redis mode takes to notice a dead instance: two instances from source,
 * a task running on the first, SIGKILL, then the time until the second one's stream shows
 * `task_failed` with `worker_lost`. Usage: REDIS_URL=… [WORKER_LOST_AFTER_MS=…] tsx scripts/measure-recovery.ts
 */
import { spawnService } from '../test/helpers/process.ts';
import { deleteKeys, openRedis, testPrefix } from '../test/helpers/redis.ts';
import { SseClient } from '../test/helpers/sse.ts';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const runs = Number(process.env.RUNS ?? 3);
const env = (prefix: string) => ({
  REDIS_URL: redisUrl,
  REDIS_PREFIX: prefix,
  TASK_MODULES: 'test/fixtures/block.ts',
  MAX_WORKERS: '1',
  ...(process.env.WORKER_LOST_AFTER_MS ? { WORKER_LOST_AFTER_MS: process.env.WORKER_LOST_AFTER_MS } : {}),
});
const redis = await openRedis(redisUrl);
const times: number[] = [];
for (let run = 0; run < runs; run++) {
  const prefix = testPrefix('recovery');
  const doomed = await spawnService('source', env(prefix));
  const survivor = await spawnService('source', env(prefix));
  try {
    const response = await fetch(`${doomed.url}/api/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'block', input: {}, max_attempts: 1 }),
    });
    const task = (await response.json()) as { task_id: string };
    const stream = await SseClient.connect(`${survivor.url}/api/tasks/${task.task_id}/events`);
    await stream.waitFor((events) => events.some((event) => event.event === 'task_started'), 'the task to start');
    doomed.kill();
    const killedAt = Date.now();
    const events = await stream.waitFor((all) => all.some((event) => event.event === 'task_failed'), 'worker_lost', 120_000);
    const failed = events.find((event) => event.event === 'task_failed');
    times.push(Date.now() - killedAt);
    console.log(`run ${run + 1}: ${failed?.json.data.error.code} after ${times.at(-1)} ms`);
    stream.close();
  } finally {
    doomed.kill();
    survivor.kill();
    await Promise.all([doomed.exited, survivor.exited]);
    await deleteKeys(redis, prefix);
  }
}
redis.disconnect();
console.log(`WORKER_LOST_AFTER_MS=${process.env.WORKER_LOST_AFTER_MS ?? 'default (30000)'}: min ${Math.min(...times)} ms, max ${Math.max(...times)} ms`);

import { pino } from 'pino';
import { BullmqExecutor } from '../src/executor/bullmq-executor.ts';
import { TaskRegistry } from '../src/tasks/registry.ts';
import { builtInTaskModules } from '../workers/tasks/index.ts';
import { executorConformance } from './conformance/executor.ts';
import { deleteKeys, openRedis, TEST_REDIS_URL, testPrefix } from './helpers/redis.ts';
import { fixtureModules } from './helpers/server.ts';

// The executor conformance suite against BullmqExecutor on the test Redis: each executor gets
// a fresh prefix (so an empty queue), and its keys are deleted afterwards.
const registry = TaskRegistry.load([...builtInTaskModules, ...fixtureModules]);

executorConformance('BullmqExecutor', async (limits) => {
  const prefix = testPrefix('executor');
  const executor = await BullmqExecutor.start({
    redisUrl: TEST_REDIS_URL,
    prefix,
    workerUrl: new URL('../workers/entry.ts', import.meta.url),
    taskModules: (await registry).moduleUrls,
    workerLostAfterMs: 30_000,
    logger: pino({ level: 'silent' }),
    ...limits,
  });
  return {
    executor,
    cleanup: async () => {
      await executor.close();
      const redis = await openRedis();
      await deleteKeys(redis, prefix);
      redis.disconnect();
    },
  };
});

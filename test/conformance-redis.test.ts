import { RedisTaskStore } from '../src/store/redis-task-store.ts';
import { storeConformance } from './conformance/store.ts';
import { deleteKeys, openRedis, testPrefix } from './helpers/redis.ts';

// The same suites as the in-memory implementations, against the machine's Redis: each test
// gets its own key prefix and deletes only its own keys.

storeConformance('RedisTaskStore', async () => {
  const prefix = testPrefix('store');
  const redis = await openRedis();
  const store = new RedisTaskStore({ redis, prefix });
  return {
    store,
    cleanup: async () => {
      await store.close();
      if (redis.status === 'end') return;
      await deleteKeys(redis, prefix);
      redis.disconnect();
    },
  };
});

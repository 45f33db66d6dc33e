import { pino } from 'pino';
import { RedisBroker } from '../src/broker/redis-broker.ts';
import { RedisTaskStore } from '../src/store/redis-task-store.ts';
import { brokerConformance } from './conformance/broker.ts';
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

brokerConformance(
  'RedisBroker',
  async ({ progressHistory, globalHistory, globalHistoryBytes }) => {
    const prefix = testPrefix('broker');
    const logger = pino({ level: 'silent' });
    // Two instances' worth: each broker with its own connections, on one prefix.
    const connections = [await openRedis(), await openRedis()];
    const [broker, peer] = connections.map(
      (redis) =>
        new RedisBroker({
          redis,
          prefix,
          progressHistory,
          globalHistory,
          ...(globalHistoryBytes === undefined ? {} : { globalHistoryBytes }),
          orphanTtlMs: 60_000,
          logger,
        }),
    ) as [RedisBroker, RedisBroker];
    await Promise.all([broker.start(), peer.start()]);
    let cleaned = false;
    return {
      broker,
      peer,
      cleanup: async () => {
        if (cleaned) return;
        cleaned = true;
        await Promise.all([broker.close(), peer.close()]);
        await deleteKeys(connections[0]!, prefix);
        for (const redis of connections) redis.disconnect();
      },
    };
  },
  { shared: true },
);

import { pino } from 'pino';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import { PiscinaExecutor } from '../src/executor/piscina-executor.ts';
import { MemoryTaskStore } from '../src/store/memory-task-store.ts';
import { TaskRegistry } from '../src/tasks/registry.ts';
import { builtInTaskModules } from '../workers/tasks/index.ts';
import { brokerConformance } from './conformance/broker.ts';
import { executorConformance } from './conformance/executor.ts';
import { storeConformance } from './conformance/store.ts';
import { fixtureModules } from './helpers/server.ts';

storeConformance('MemoryTaskStore', async () => {
  const store = new MemoryTaskStore();
  return { store, cleanup: () => store.close() };
});

brokerConformance('MemoryBroker', async (limits) => {
  const broker = new MemoryBroker(limits);
  return { broker, cleanup: () => broker.close() };
});

const registry = TaskRegistry.load([...builtInTaskModules, ...fixtureModules]);
executorConformance('PiscinaExecutor', async (limits) => {
  const executor = new PiscinaExecutor({
    workerUrl: new URL('../workers/entry.ts', import.meta.url),
    taskModules: (await registry).moduleUrls,
    logger: pino({ level: 'silent' }),
    ...limits,
  });
  return { executor, cleanup: () => executor.close() };
});

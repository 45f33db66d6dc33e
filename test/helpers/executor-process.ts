// A BullmqExecutor alone in its own process, for tests that kill an instance: reads its
// options from the environment, prints each executor event as a JSON line on stdout, and
// submits or cancels tasks sent as JSON lines on stdin.
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { BullmqExecutor } from '../../src/executor/bullmq-executor.ts';

const fixture = (name: string) => new URL(`../fixtures/${name}.ts`, import.meta.url).href;
const env = process.env;

const executor = await BullmqExecutor.start({
  redisUrl: env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  prefix: env.REDIS_PREFIX!,
  workerUrl: new URL('../../workers/entry.ts', import.meta.url),
  taskModules: { block: fixture('block'), gate: fixture('gate') },
  maxWorkers: Number(env.MAX_WORKERS ?? 2),
  maxQueue: 1000,
  cancelGraceMs: 500,
  workerLostAfterMs: Number(env.WORKER_LOST_AFTER_MS),
  logger: pino({ level: 'warn' }, pino.destination(2)),
});
const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
executor.on('started', (taskId, attempt) => print({ event: 'started', taskId, attempt }));
executor.on('progress', (taskId) => print({ event: 'progress', taskId }));
executor.on('finished', (taskId, outcome) => print({ event: 'finished', taskId, outcome }));
print({ event: 'ready' });
createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line) as { cancel?: string };
  if (command.cancel) void executor.cancel(command.cancel, 'requested');
});

// Figure 1's client: many clients each create a task over HTTP, wait for its end on the
// multiplexed stream, and create the next. Runs in its own process.
import { Redis } from 'ioredis';
import { JsonPoster } from '../lib/json-poster.ts';
import { redisCommands } from '../lib/redis-stats.ts';
import { openEventStream } from '../lib/event-stream.ts';
import { cpuBetween, snapshotCpu, type CpuSnapshot } from '../lib/proc-cpu.ts';
import { serveCommands } from '../lib/rpc.ts';

const TERMINAL = new Set(['task_completed', 'task_failed', 'task_cancelled']);

export interface TaskLoopArgs {
  baseUrl: string;
  /** The create request's JSON body. */
  body: string;
  clients: number;
  warmupMs: number;
  measureMs: number;
  /** Processes whose CPU time is read at the window's edges (this one is always added). */
  cpuPids?: number[];
  /** A Redis whose processed commands (INFO stats) are read at the window's edges. */
  redisUrl?: string;
}

async function run({ baseUrl, body, clients, warmupMs, measureMs, cpuPids = [], redisUrl }: TaskLoopArgs) {
  const redis = redisUrl ? new Redis(redisUrl, { maxRetriesPerRequest: 1 }) : undefined;
  let commandsStart: Promise<number> | undefined;
  let commandsEnd: Promise<number> | undefined;
  const pids = [process.pid, ...cpuPids];
  let progressInWindow = 0;
  let inWindow = false;
  /** Waiters by task id, and ends that arrived before their POST was answered. */
  const waiting = new Map<string, (eventType: string) => void>();
  const endedEarly = new Map<string, string>();
  const stream = await openEventStream(`${baseUrl}/api/events`, (event) => {
    if (event.event === 'progress_update' && inWindow) progressInWindow++;
    if (!event.event || !TERMINAL.has(event.event)) return;
    const taskId = (JSON.parse(event.data) as { task_id: string }).task_id;
    const waiter = waiting.get(taskId);
    if (waiter) {
      waiting.delete(taskId);
      waiter(event.event);
    } else {
      endedEarly.set(taskId, event.event);
    }
  });
  const ended = (taskId: string) =>
    new Promise<string>((resolve) => {
      const early = endedEarly.get(taskId);
      if (early !== undefined) {
        endedEarly.delete(taskId);
        resolve(early);
      } else {
        waiting.set(taskId, resolve);
      }
    });

  const poster = new JsonPoster(`${baseUrl}/api/tasks`, clients);
  const windowStart = performance.now() + warmupMs;
  const windowEnd = windowStart + measureMs;
  let counted = 0;
  const failures: string[] = [];
  let cpuStart: CpuSnapshot | undefined;
  let cpuEnd: CpuSnapshot | undefined;
  const edges = [
    setTimeout(() => {
      inWindow = true;
      cpuStart = snapshotCpu(pids);
      if (redis) commandsStart = redisCommands(redis);
    }, warmupMs),
    setTimeout(() => {
      inWindow = false;
      cpuEnd = snapshotCpu(pids);
      if (redis) commandsEnd = redisCommands(redis);
    }, warmupMs + measureMs),
  ];
  const client = async () => {
    while (performance.now() < windowEnd && failures.length === 0) {
      const answer = await poster.post(body);
      if (answer.status !== 201) {
        failures.push(`POST answered ${answer.status}: ${answer.body.slice(0, 200)}`);
        return;
      }
      const eventType = await ended((JSON.parse(answer.body) as { task_id: string }).task_id);
      if (eventType !== 'task_completed') failures.push(`a task ended with ${eventType}`);
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) counted++;
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    edges.forEach(clearTimeout);
    poster.close();
    stream.close();
  }
  const redisCommandsInWindow = commandsStart && commandsEnd ? (await commandsEnd) - (await commandsStart) : undefined;
  redis?.disconnect();
  if (failures.length > 0) throw new Error(failures[0]);
  const cpu = cpuStart && cpuEnd ? cpuBetween(cpuStart, cpuEnd) : [];
  return {
    rate: counted / (measureMs / 1000),
    progressRate: progressInWindow / (measureMs / 1000),
    tasks: counted,
    cpu,
    ...(redisCommandsInWindow === undefined ? {} : { redisCommands: redisCommandsInWindow }),
  };
}

const commands = { run };
export type TaskLoopCommands = typeof commands;
serveCommands(commands);

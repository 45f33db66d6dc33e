// Figures 1, 1.cpu and 4: a client's view, end to end. `clients` concurrent submitters each
// create a task and wait for its end on the all-tasks stream (POST /api/tasks +
// /api/events), against BullMQ with as many lanes doing queue.add and waiting on
// QueueEvents, a Worker of the same concurrency in its own process. Trivial tasks, then
// tasks that report progress 10 times (events delivered per second). CPU time of every
// process involved is read from /proc at the window's edges (Redis's from INFO cpu).
import {
  closeAll,
  profiled,
  startBullmqClient,
  startBullmqWorker,
  startTaskLoop,
  startTaskstream,
  type RunOptions,
} from '../lib/children.ts';
import type { CpuUse } from '../lib/proc-cpu.ts';

export interface EndToEndSettings {
  clients: number;
  firstRunMs: number;
  warmupMs: number;
  measureMs: number;
  trials: number;
  /** Progress reports per task in the progress variant. */
  progressPerTask: number;
}

/** One trial: rates, and the CPU time per task of each process, split by thread. */
export interface EndToEndTrial {
  rate: number;
  progressRate: number;
  tasks: number;
  /** Microseconds of CPU per completed task, by process role. */
  cpuPerTaskUs: Record<string, number>;
  /** Microseconds per task by process role and thread (main, or the thread's name). */
  threadsPerTaskUs: Record<string, Record<string, number>>;
  /** The load generator's CPU use during the window, in cores (1 = one core busy). */
  clientCores: number;
}

const perTask = (use: CpuUse | undefined, tasks: number) => (use ? use.cpuUs / Math.max(1, tasks) : Number.NaN);
const threadsPerTask = (use: CpuUse | undefined, tasks: number) =>
  Object.fromEntries(Object.entries(use?.byThread ?? {}).map(([role, us]) => [role, Math.round(us / Math.max(1, tasks))]));

function trialOf(
  result: { rate: number; progressRate: number; tasks: number; cpu: CpuUse[]; redisCpuUs?: number },
  roles: Record<number, string>,
  measureMs: number,
): EndToEndTrial {
  const cpuPerTaskUs: Record<string, number> = {};
  const threadsPerTaskUs: Record<string, Record<string, number>> = {};
  for (const use of result.cpu) {
    const role = roles[use.pid] ?? String(use.pid);
    cpuPerTaskUs[role] = perTask(use, result.tasks);
    threadsPerTaskUs[role] = threadsPerTask(use, result.tasks);
  }
  if (result.redisCpuUs !== undefined) cpuPerTaskUs.redis = result.redisCpuUs / Math.max(1, result.tasks);
  const client = result.cpu.find((use) => roles[use.pid] === 'client');
  return {
    rate: result.rate,
    progressRate: result.progressRate,
    tasks: result.tasks,
    cpuPerTaskUs,
    threadsPerTaskUs,
    clientCores: client ? client.cpuUs / 1000 / measureMs : Number.NaN,
  };
}

export const totalCpuUs = (trial: EndToEndTrial) => Object.values(trial.cpuPerTaskUs).reduce((sum, us) => sum + us, 0);

export async function measureEndToEnd(run: RunOptions, settings: EndToEndSettings) {
  const { clients, firstRunMs, warmupMs, measureMs, trials, progressPerTask } = settings;
  const callMs = warmupMs + Math.max(firstRunMs, measureMs) + 30_000;
  const service = startTaskstream(run, { MAX_QUEUE: '1000000', RETENTION_MS: '1000', HEARTBEAT_MS: '600000' });
  const loop = startTaskLoop();
  const peer = run.redisUrl ? { worker: startBullmqWorker(run, 'e2e'), client: startBullmqClient(run, 'e2e') } : undefined;
  try {
    const [{ url }] = await Promise.all([service.ready, loop.ready, peer?.worker.ready, peer?.client.ready]);
    if (peer) await peer.worker.call('run', {}, 10_000);
    const ourRoles = { [service.pid]: 'server', [loop.pid]: 'client' };
    const peerRoles = peer ? { [peer.worker.pid]: 'worker', [peer.client.pid]: 'client' } : {};

    const ours = async (progress: number, windowMs: number) => {
      const body = JSON.stringify(progress > 0 ? { type: 'bench_flood', input: { count: progress } } : { type: 'bench_noop', input: {} });
      const result = await loop.call('run', { baseUrl: url, body, clients, warmupMs, measureMs: windowMs, cpuPids: [service.pid] }, callMs);
      return trialOf(result, ourRoles, windowMs);
    };
    const theirs = async (progress: number, windowMs: number) => {
      if (!peer) return undefined;
      const args = { lanes: clients, warmupMs, measureMs: windowMs, progress, cpuPids: [peer.worker.pid] };
      return trialOf(await peer.client.call('loop', args, callMs), peerRoles, windowMs);
    };

    const result = {
      trivial: { product: [] as EndToEndTrial[], baseline: [] as EndToEndTrial[] },
      progress: { product: [] as EndToEndTrial[], baseline: [] as EndToEndTrial[] },
    };
    for (const [variant, progress] of [['trivial', 0], ['progress', progressPerTask]] as const) {
      run.log(`end to end (${variant}), first runs`);
      await ours(progress, firstRunMs);
      await theirs(progress, firstRunMs);
      for (let trial = 0; trial < trials; trial++) {
        run.log(`end to end (${variant}), trial ${trial + 1}`);
        const measure = () => ours(progress, measureMs);
        result[variant].product.push(await profiled(run, service, `end-to-end-${variant}-${trial + 1}`, measure));
        const baseline = await theirs(progress, measureMs);
        if (baseline) result[variant].baseline.push(baseline);
      }
    }
    if (peer) await peer.client.call('cleanup', undefined, 30_000);
    return result;
  } finally {
    if (peer) await Promise.allSettled([peer.worker.call('stop', undefined, 10_000), peer.client.call('stop', undefined, 10_000)]);
    await closeAll([service, loop, peer?.worker, peer?.client]);
  }
}

// Figures 2 and 2.b: execution alone. The queue is filled while paused (bulk create), then
// resumed; the time until the last task has completed gives the rate, with no HTTP during
// the window but one long poll on the last task. Against raw Piscina running a no-op on as
// many threads, and BullMQ's Worker draining as many pre-filled no-op jobs.
import {
  closeAll,
  profiled,
  startBullmqClient,
  startBullmqWorker,
  startRawPiscina,
  startTaskstream,
  type RunOptions,
} from '../lib/children.ts';
import { cpuBetween, snapshotCpu } from '../lib/proc-cpu.ts';
import { pauseQueue, resumeQueue } from '../lib/service-api.ts';

export interface ExecutionSettings {
  tasks: number;
  trials: number;
  /** Raw Piscina: tasks in flight, and its window. */
  concurrency: number;
  measureMs: number;
}

const BATCH = 1000;

async function prefill(url: string, tasks: number): Promise<string> {
  let lastId = '';
  for (let done = 0; done < tasks; done += BATCH) {
    const items = Array.from({ length: Math.min(BATCH, tasks - done) }, () => ({ type: 'bench_noop', input: {} }));
    const response = await fetch(`${url}/api/tasks/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ items }),
    });
    const answer = (await response.json()) as { failed: number; items: { task: { task_id: string } | null }[] };
    if (response.status !== 200 || answer.failed > 0) throw new Error(`bulk create answered ${response.status}, ${answer.failed} failed`);
    lastId = answer.items.at(-1)!.task!.task_id;
  }
  return lastId;
}

export async function measureExecution(run: RunOptions, settings: ExecutionSettings) {
  const { tasks, trials, concurrency, measureMs } = settings;
  const service = startTaskstream(run, {
    MAX_QUEUE: String(10 * tasks),
    RETENTION_MS: '1000',
    HEARTBEAT_MS: '600000',
    BODY_LIMIT_BYTES: String(10 * 1024 * 1024),
  });
  const raw = startRawPiscina(run);
  const peer = run.redisUrl ? { worker: startBullmqWorker(run, 'execution'), client: startBullmqClient(run, 'execution') } : undefined;
  try {
    const [{ url }] = await Promise.all([service.ready, raw.ready, peer?.worker.ready, peer?.client.ready]);
    const ours = async (profileName?: string) => {
      await pauseQueue(url);
      const lastId = await prefill(url, tasks);
      const window = async () => {
        const before = snapshotCpu([service.pid]);
        const started = performance.now();
        await resumeQueue(url);
        const response = await fetch(`${url}/api/tasks/${lastId}/wait?timeout_ms=120000`);
        return { before, response, elapsedMs: performance.now() - started };
      };
      const { before, response, elapsedMs } = profileName ? await profiled(run, service, profileName, window) : await window();
      const last = (await response.json()) as { status: string };
      if (last.status !== 'completed') throw new Error(`the last pre-filled task is ${last.status}`);
      const [use] = cpuBetween(before, snapshotCpu([service.pid]));
      return { rate: tasks / (elapsedMs / 1000), cpuPerTaskUs: use ? use.cpuUs / tasks : Number.NaN, byThread: use?.byThread };
    };
    const baseline = async () => (await raw.call('measure', { concurrency, warmupMs: 300, measureMs }, measureMs + 30_000)).rate;
    const theirs = async () => {
      if (!peer) return undefined;
      await peer.worker.call('pause', undefined, 30_000);
      await peer.client.call('prefill', { count: tasks }, 120_000);
      const { ms } = await peer.worker.call('run', { count: tasks }, 120_000);
      return tasks / (ms / 1000);
    };
    run.log('execution, first runs');
    await ours();
    await baseline();
    await theirs();
    const result = { product: [] as Awaited<ReturnType<typeof ours>>[], raw: [] as number[], bullmq: [] as number[] };
    for (let trial = 0; trial < trials; trial++) {
      run.log(`execution, trial ${trial + 1}`);
      result.product.push(await ours(`execution-${trial + 1}`));
      result.raw.push(await baseline());
      const peerRate = await theirs();
      if (peerRate !== undefined) result.bullmq.push(peerRate);
    }
    if (peer) await peer.client.call('cleanup', undefined, 30_000);
    return result;
  } finally {
    if (peer) await Promise.allSettled([peer.worker.call('stop', undefined, 10_000), peer.client.call('stop', undefined, 10_000)]);
    await closeAll([service, raw, peer?.worker, peer?.client]);
  }
}

// Figure 1: tasks created over HTTP and seen ending on the multiplexed stream, against raw
// Piscina running the same no-op on as many threads. The same client also drives a bare
// node:http + Piscina pipeline: what HTTP and SSE alone cost on this machine, the ceiling
// of the figure.
import {
  closeAll,
  profiled,
  startRawPipelineServer,
  startRawPiscina,
  startTaskLoop,
  startTaskstream,
  type RunOptions,
} from '../lib/children.ts';

export interface TaskRateSettings {
  /** Concurrent clients; raw Piscina keeps as many tasks in flight. */
  clients: number;
  /** A first, uncounted run of each side, so code is optimized before any trial. */
  firstRunMs: number;
  /** Uncounted start of each trial. */
  warmupMs: number;
  measureMs: number;
  trials: number;
}

export async function measureTaskRate(run: RunOptions, settings: TaskRateSettings) {
  const { clients, firstRunMs, warmupMs, measureMs, trials } = settings;
  const callMs = warmupMs + Math.max(firstRunMs, measureMs) + 30_000;
  // Short retention keeps the store at a steady size, so later trials are not slower
  // for holding every earlier task; evictions are part of the steady state measured.
  const service = startTaskstream(run, { MAX_QUEUE: '1000000', RETENTION_MS: '1000', HEARTBEAT_MS: '600000' });
  const pipeline = startRawPipelineServer(run);
  const raw = startRawPiscina(run);
  const loop = startTaskLoop();
  try {
    const [{ url: serviceUrl }, { url: pipelineUrl }] = await Promise.all([service.ready, pipeline.ready, raw.ready, loop.ready]);
    const body = JSON.stringify({ type: 'bench_noop', input: {} });
    const measureBaseline = (windowMs: number) =>
      raw.call('measure', { concurrency: clients, warmupMs, measureMs: windowMs }, callMs);
    const measureOverHttp = (baseUrl: string, windowMs: number) =>
      loop.call('run', { baseUrl, body, clients, warmupMs, measureMs: windowMs }, callMs);
    run.log('task rate, first runs');
    await measureBaseline(firstRunMs);
    await measureOverHttp(pipelineUrl, firstRunMs);
    await measureOverHttp(serviceUrl, firstRunMs);
    const product: number[] = [];
    const baseline: number[] = [];
    const ceiling: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      run.log(`task rate, trial ${trial + 1}`);
      baseline.push((await measureBaseline(measureMs)).rate);
      ceiling.push((await measureOverHttp(pipelineUrl, measureMs)).rate);
      const measure = () => measureOverHttp(serviceUrl, measureMs);
      product.push((await profiled(run, service, `task-rate-${trial + 1}`, measure)).rate);
    }
    return { product, baseline, ceiling };
  } finally {
    await closeAll([service, pipeline, raw, loop]);
  }
}

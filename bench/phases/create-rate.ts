// Figure 2: POST /api/tasks against a bare Hono handler that parses the same JSON.
import { closeAll, profiled, startHonoPostServer, startPostLoad, startTaskstream, type RunOptions } from '../lib/children.ts';
import { pauseQueue } from '../lib/service-api.ts';

export interface CreateRateSettings {
  connections: number;
  /** A first, uncounted run of each side, so code is optimized before any trial. */
  firstRunMs: number;
  /** Uncounted start of each trial. */
  warmupMs: number;
  measureMs: number;
  trials: number;
}

const BODY = JSON.stringify({ type: 'bench_noop', input: {} });

/**
 * The queue is paused and MAX_QUEUE large, so every create answers 201 and no task runs:
 * the worker threads take no CPU from the HTTP path. The queue grows by the tasks of every
 * trial, a few tens of thousands, which costs the service little.
 */
export async function measureCreateRate(run: RunOptions, settings: CreateRateSettings) {
  const { connections, firstRunMs, warmupMs, measureMs, trials } = settings;
  const callMs = warmupMs + Math.max(firstRunMs, measureMs) + 30_000;
  const load = (url: string, windowMs = measureMs) =>
    client.call('run', { url, body: BODY, connections, warmupMs, measureMs: windowMs, expectStatus: 201 }, callMs);
  const service = startTaskstream(run, {
    MAX_QUEUE: '100000000',
    MAX_RETAINED_TASKS: '100000000',
    HEARTBEAT_MS: '600000',
  });
  const hono = startHonoPostServer();
  const client = startPostLoad();
  try {
    const [{ url: serviceUrl }, { url: honoUrl }] = await Promise.all([service.ready, hono.ready, client.ready]);
    await pauseQueue(serviceUrl);
    run.log('create rate, first runs');
    await load(`${honoUrl}/api/tasks`, firstRunMs);
    await load(`${serviceUrl}/api/tasks`, firstRunMs);
    const product: number[] = [];
    const baseline: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      run.log(`create rate, trial ${trial + 1}`);
      baseline.push((await load(`${honoUrl}/api/tasks`)).rate);
      const measure = () => load(`${serviceUrl}/api/tasks`);
      product.push((await profiled(run, service, `create-rate-${trial + 1}`, measure)).rate);
    }
    return { product, baseline };
  } finally {
    await closeAll([service, hono, client]);
  }
}

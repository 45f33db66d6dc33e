// Figures 3 and 3.bulk: POST /api/tasks against a bare Hono handler that parses the same
// JSON, both driven by wrk; then bulk create (POST /api/tasks/batch, 1,000 items a request)
// against the single-create rate. The queue is paused so no task runs.
import { closeAll, profiled, startHonoPostServer, startTaskstream, type RunOptions } from '../lib/children.ts';
import { cpuBetween, snapshotCpu } from '../lib/proc-cpu.ts';
import { pauseQueue } from '../lib/service-api.ts';
import { wrkPost, type WrkResult } from '../lib/wrk.ts';

export interface CreateRateSettings {
  connections: number;
  seconds: number;
  trials: number;
  /** Bulk create: requests of 1,000 items each, per trial. */
  bulkRequests: number;
}

const BODY = JSON.stringify({ type: 'bench_noop', input: {} });
const BULK_ITEMS = 1000;

export interface CreateTrial extends WrkResult {
  /** CPU of the server process per request, in microseconds. */
  serverCpuPerRequestUs: number;
}

export async function measureCreateRate(run: RunOptions, settings: CreateRateSettings) {
  const { connections, seconds, trials, bulkRequests } = settings;
  const service = startTaskstream(run, {
    MAX_QUEUE: '100000000',
    MAX_RETAINED_TASKS: '100000000',
    HEARTBEAT_MS: '600000',
    BODY_LIMIT_BYTES: String(10 * 1024 * 1024),
  });
  const hono = startHonoPostServer();
  try {
    const [{ url: serviceUrl }, { url: honoUrl }] = await Promise.all([service.ready, hono.ready]);
    await pauseQueue(serviceUrl);
    const load = async (url: string, pid: number, windowSeconds = seconds): Promise<CreateTrial> => {
      const before = snapshotCpu([pid]);
      const result = await wrkPost(url, BODY, connections, windowSeconds);
      const [use] = cpuBetween(before, snapshotCpu([pid]));
      if (result.non2xx > 0) throw new Error(`POST ${url}: ${result.non2xx} answers were not 2xx`);
      return { ...result, serverCpuPerRequestUs: use ? use.cpuUs / Math.max(1, result.requests) : Number.NaN };
    };
    run.log('create rate, first runs');
    await load(`${honoUrl}/api/tasks`, hono.pid, 1);
    await load(`${serviceUrl}/api/tasks`, service.pid, 1);
    const product: CreateTrial[] = [];
    const baseline: CreateTrial[] = [];
    for (let trial = 0; trial < trials; trial++) {
      run.log(`create rate, trial ${trial + 1}`);
      baseline.push(await load(`${honoUrl}/api/tasks`, hono.pid));
      const measure = () => load(`${serviceUrl}/api/tasks`, service.pid);
      product.push(await profiled(run, service, `create-rate-${trial + 1}`, measure));
    }

    run.log('bulk create');
    const batch = JSON.stringify({ items: Array.from({ length: BULK_ITEMS }, () => JSON.parse(BODY)) });
    const bulk: number[] = [];
    for (let trial = 0; trial < trials + 1; trial++) {
      const started = performance.now();
      // Two requests in flight, as a client streaming a backlog in would keep.
      const lane = async (requests: number) => {
        for (let request = 0; request < requests; request++) {
          const response = await fetch(`${serviceUrl}/api/tasks/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: batch,
          });
          const answer = (await response.json()) as { created: number };
          if (answer.created !== BULK_ITEMS) throw new Error(`bulk create created ${answer.created} of ${BULK_ITEMS}`);
        }
      };
      await Promise.all([lane(Math.ceil(bulkRequests / 2)), lane(Math.floor(bulkRequests / 2))]);
      // The first round warms up.
      if (trial > 0) bulk.push((bulkRequests * BULK_ITEMS) / ((performance.now() - started) / 1000));
    }
    return { product, baseline, bulk };
  } finally {
    await closeAll([service, hono]);
  }
}

// Figure 5: from a worker's ctx.progress to the client, at a steady task rate, against the
// same path built from node:http and Piscina alone.
import { closeAll, profiled, startLatencyProbe, startRawPipelineServer, startTaskstream, type RunOptions } from '../lib/children.ts';

export interface LatencySettings {
  /** Tasks created per second (about half the measured maximum). */
  rate: number;
  connections: number;
  warmupMs: number;
  measureMs: number;
}

export async function measureLatency(run: RunOptions, settings: LatencySettings) {
  const callMs = settings.warmupMs + settings.measureMs + 30_000;
  const service = startTaskstream(run, { MAX_QUEUE: '1000000', RETENTION_MS: '1000', HEARTBEAT_MS: '600000' });
  const raw = startRawPipelineServer(run);
  const probe = startLatencyProbe();
  try {
    const [{ url: serviceUrl }, { url: rawUrl }] = await Promise.all([service.ready, raw.ready, probe.ready]);
    const body = JSON.stringify({ type: 'bench_stamp', input: {} });
    const baseline = await probe.call('run', { baseUrl: rawUrl, body, ...settings }, callMs);
    const product = await profiled(run, service, 'latency', () =>
      probe.call('run', { baseUrl: serviceUrl, body, ...settings }, callMs),
    );
    return { product, baseline };
  } finally {
    await closeAll([service, raw, probe]);
  }
}

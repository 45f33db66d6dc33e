// Figure 5's client: creates stamped tasks at a steady rate (open loop: it does not wait for
// one to end before the next) and measures, for each progress_update on the multiplexed
// stream, how long ago the worker stamped it. Runs in its own process.
import { JsonPoster } from '../lib/json-poster.ts';
import { openEventStream } from '../lib/event-stream.ts';
import { serveCommands } from '../lib/rpc.ts';
import { percentile } from '../lib/stats.ts';

export interface LatencyArgs {
  baseUrl: string;
  body: string;
  /** Tasks created per second. */
  rate: number;
  connections: number;
  warmupMs: number;
  measureMs: number;
}

/** Creates due tasks this often; a smaller tick only adds timer overhead. */
const TICK_MS = 2;

async function run({ baseUrl, body, rate, connections, warmupMs, measureMs }: LatencyArgs) {
  const latenciesNs: number[] = [];
  let measuring = false;
  const stream = await openEventStream(`${baseUrl}/api/events`, (event) => {
    if (!measuring || event.event !== 'progress_update') return;
    const received = process.hrtime.bigint();
    const text = (JSON.parse(event.data) as { data: { text: string } }).data.text;
    latenciesNs.push(Number(received - BigInt(text)));
  });
  const poster = new JsonPoster(`${baseUrl}/api/tasks`, connections);
  const failures: string[] = [];
  let sent = 0;
  let outstanding = 0;
  let behind = 0;
  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + measureMs;
  try {
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        measuring = now >= windowStart && now < windowEnd;
        if (now >= windowEnd || failures.length > 0) return resolve();
        const due = Math.floor(((now - start) / 1000) * rate) - sent;
        for (let i = 0; i < due; i++) {
          sent++;
          // A server this far behind is overloaded: skipping keeps the probe bounded.
          if (outstanding >= connections * 8) {
            behind++;
            continue;
          }
          outstanding++;
          poster.post(body).then(
            (answer) => {
              outstanding--;
              if (answer.status !== 201) failures.push(`POST answered ${answer.status}: ${answer.body.slice(0, 200)}`);
            },
            (error: Error) => failures.push(error.message),
          );
        }
        setTimeout(tick, TICK_MS);
      };
      tick();
    });
    // Let the last tasks' events arrive before the stream closes.
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    measuring = false;
    poster.close();
    stream.close();
  }
  if (failures.length > 0) throw new Error(failures[0]);
  const sorted = Float64Array.from(latenciesNs).sort();
  return {
    samples: sorted.length,
    skipped: behind,
    p50Ms: percentile(sorted, 0.5) / 1e6,
    p99Ms: percentile(sorted, 0.99) / 1e6,
    maxMs: percentile(sorted, 1) / 1e6,
  };
}

const commands = { run };
export type LatencyProbeCommands = typeof commands;
serveCommands(commands);

// `npm run bench`: measures the service against baselines run on the same machine in the
// same run, prints a table of ratios and writes reports/bench.json.
// BENCH_PROFILE=1 also writes a CPU profile of the service's main thread for each of its
// measurements to reports/profiles/ (summarize one with bench/profile-summary.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { killAllChildren } from './lib/bench-child.ts';
import { StealMeter } from './lib/steal-meter.ts';
import type { RunOptions } from './lib/children.ts';
import { figure, type Figure } from './lib/figure.ts';
import { describeMachine } from './lib/machine.ts';
import { median } from './lib/stats.ts';
import { formatTable } from './lib/table.ts';
import { measureCreateRate } from './phases/create-rate.ts';
import { measureFanOut } from './phases/fan-out.ts';
import { measureLatency } from './phases/latency.ts';
import { measureTaskRate } from './phases/task-rate.ts';

/** The whole run must end within this, whatever hangs: children are killed and it fails. */
const RUN_DEADLINE_MS = 280_000;
const THREADS = 2;
const reportsDir = fileURLToPath(new URL('../reports/', import.meta.url));
const reportFile = `${reportsDir}bench.json`;

const settings = {
  // Short trials, alternating product and baseline, and the median of each: the machine's
  // speed drifts (other guests take CPU time), and alternation spreads the drift over both.
  taskRate: { clients: 64, firstRunMs: 3000, warmupMs: 300, measureMs: 2000, trials: 5 },
  createRate: { connections: 64, firstRunMs: 3000, warmupMs: 300, measureMs: 2000, trials: 5 },
  fanOut: { sizes: [1000, 5000], roundSeconds: 1.5, minProgressEvents: 20, maxProgressEvents: 2000, trials: 3, memoryAt: 5000 },
  latency: { rateOfMaximum: 0.5, connections: 64, warmupMs: 4000, measureMs: 4000 },
};

const started = performance.now();
const progress = (message: string) => console.error(`bench: ${message} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
const profileDir = process.env.BENCH_PROFILE === '1' ? `${reportsDir}profiles` : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });
const run: RunOptions = { threads: THREADS, profileDir, log: progress };

const deadline = setTimeout(() => {
  console.error(`bench: still running after ${RUN_DEADLINE_MS / 1000} s; stopping every process`);
  killAllChildren();
  process.exit(1);
}, RUN_DEADLINE_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

const machine = describeMachine();
const steal = new StealMeter();
if (machine.loadAverage > machine.cores) {
  progress(`warning: load average ${machine.loadAverage} on ${machine.cores} cores: other processes compete for the CPU`);
}
const needFiles = Math.max(...settings.fanOut.sizes) + 200;
if (!(machine.openFilesLimit >= needFiles)) {
  throw new Error(`ulimit -n is ${machine.openFilesLimit}; the fan-out needs at least ${needFiles} (raise it with ulimit -n)`);
}
const figures: Figure[] = [];

try {
  progress('1/4 end-to-end task rate');
  const taskRate = await measureTaskRate(run, settings.taskRate);
  figures.push(
    figure({
      id: '1',
      name: 'task rate, HTTP create -> end seen on /api/events',
      unit: 'tasks/s',
      product: median(taskRate.product),
      baseline: median(taskRate.baseline),
      baselineName: `raw Piscina, ${THREADS} threads`,
      goal: { kind: 'ratio-at-least', value: 0.4 },
      detail: { trials: taskRate, settings: settings.taskRate },
    }),
    figure({
      id: '1.ceil',
      name: 'ceiling of 1: the same client against bare node:http + Piscina',
      unit: 'tasks/s',
      product: median(taskRate.ceiling),
      baseline: median(taskRate.baseline),
      baselineName: `raw Piscina, ${THREADS} threads`,
      goal: { kind: 'none' },
      detail: { trials: { ceiling: taskRate.ceiling, baseline: taskRate.baseline } },
    }),
  );

  progress('2/4 create rate');
  const createRate = await measureCreateRate(run, settings.createRate);
  figures.push(
    figure({
      id: '2',
      name: 'create rate, POST /api/tasks (queue paused)',
      unit: 'req/s',
      product: median(createRate.product),
      baseline: median(createRate.baseline),
      baselineName: 'bare Hono POST',
      goal: { kind: 'ratio-at-least', value: 0.6 },
      detail: { trials: createRate, settings: settings.createRate },
    }),
  );

  progress('3/4 fan-out and memory per stream');
  const fanOut = await measureFanOut(run, settings.fanOut);
  for (const [subscribers, deliveries] of fanOut.deliveries) {
    figures.push(
      figure({
        id: `3.${subscribers}`,
        name: `fan-out to ${subscribers.toLocaleString('en-US')} task streams`,
        unit: 'events/s',
        product: median(deliveries.product.map((delivery) => delivery.rate)),
        baseline: median(deliveries.baseline.map((delivery) => delivery.rate)),
        baselineName: 'raw node:http SSE',
        goal: { kind: 'ratio-at-least', value: 0.8 },
        detail: { ...deliveries, settings: settings.fanOut },
      }),
    );
  }
  figures.push(
    figure({
      id: '4',
      name: `memory per idle stream at ${settings.fanOut.memoryAt.toLocaleString('en-US')}`,
      unit: 'KiB',
      product: fanOut.memory.product.rss / 1024,
      baseline: fanOut.memory.baseline.rss / 1024,
      baselineName: 'raw node:http SSE',
      goal: { kind: 'ratio-at-most', value: 1.25 },
      // RSS is the figure; the V8 heap's share of it tells what kind of memory grew.
      detail: { bytesPerStream: fanOut.memory },
    }),
  );

  const rate = Math.round(figures[0]!.product * settings.latency.rateOfMaximum);
  progress(`4/4 latency at ${rate} tasks/s`);
  const latency = await measureLatency(run, { ...settings.latency, rate });
  const latencyDetail = { rate, ...latency, settings: settings.latency };
  figures.push(
    figure({
      id: '5.p50',
      name: `latency p50, ctx.progress -> client, ${rate} tasks/s`,
      unit: 'ms',
      product: latency.product.p50Ms,
      baseline: latency.baseline.p50Ms,
      baselineName: 'node:http + Piscina',
      goal: { kind: 'none' },
      detail: latencyDetail,
    }),
    figure({
      id: '5.p99',
      name: `latency p99, ctx.progress -> client, ${rate} tasks/s`,
      unit: 'ms',
      product: latency.product.p99Ms,
      baseline: latency.baseline.p99Ms,
      baselineName: 'node:http + Piscina',
      goal: { kind: 'product-at-most', value: 5 },
      detail: latencyDetail,
    }),
  );
} finally {
  killAllChildren();
  clearTimeout(deadline);
}

const wallSeconds = (performance.now() - started) / 1000;
const loadAverageAtEnd = Math.round(os.loadavg()[0]! * 100) / 100;
const stealShare = Math.round(steal.fraction() * 1000) / 1000;
console.log(formatTable(machine, figures, wallSeconds));
console.log(`load average at end: ${loadAverageAtEnd}; CPU time stolen by the hypervisor during the run: ${(stealShare * 100).toFixed(1)} %`);
// The bench itself keeps about cores + 1 threads busy; more than that means others competed.
if (Math.max(machine.loadAverage, loadAverageAtEnd) > machine.cores + 2) {
  console.log('warning: other processes competed for the CPU during the run: compare with a run on a quiet machine');
}
mkdirSync(reportsDir, { recursive: true });
writeFileSync(
  reportFile,
  `${JSON.stringify({ date: new Date().toISOString(), machine, loadAverageAtEnd, stealShare, threads: THREADS, wallSeconds, figures }, replacer, 2)}\n`,
);
console.log(`written: ${reportFile}`);

/** Maps (per-size trials) become plain objects in the JSON. */
function replacer(_key: string, value: unknown) {
  return value instanceof Map ? Object.fromEntries(value) : value;
}

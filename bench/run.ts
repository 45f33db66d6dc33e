// `npm run bench`: measures the service against baselines run on the same machine in the
// same run, prints a table of ratios and writes reports/bench.json. The BullMQ peer figures
// run when a Redis answers at BENCH_REDIS_URL (default redis://127.0.0.1:6379); wrk (Debian
// package) drives the create figures.
// BENCH_PROFILE=1 also writes a CPU profile of the service's main thread for each of its
// measurements to reports/profiles/ (summarize one with bench/profile-summary.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { killAllChildren } from './lib/bench-child.ts';
import { StealMeter } from './lib/steal-meter.ts';
import type { RunOptions } from './lib/children.ts';
import { figure, type Figure } from './lib/figure.ts';
import { describeMachine } from './lib/machine.ts';
import { median } from './lib/stats.ts';
import { formatTable } from './lib/table.ts';
import { wrkAvailable } from './lib/wrk.ts';
import { measureCreateRate } from './phases/create-rate.ts';
import { measureEndToEnd, totalCpuUs, type EndToEndTrial } from './phases/end-to-end.ts';
import { measureExecution } from './phases/execution.ts';
import { measureFanOut } from './phases/fan-out.ts';
import { measureLatency } from './phases/latency.ts';
import { measureRedisMode, type RedisModeTrial } from './phases/redis-mode.ts';

/** The whole run must end within this, whatever hangs: children are killed and it fails. */
const RUN_DEADLINE_MS = 1_200_000;
const THREADS = 2;
const reportsDir = fileURLToPath(new URL('../reports/', import.meta.url));
const reportFile = `${reportsDir}bench.json`;
/** A load generator busier than this (in cores) may be what limits the figure. */
const CLIENT_LIMIT_CORES = 0.85;

/**
 * BENCH_ONLY=redis,execution: only these phases (e2e, execution, create, fanout, latency,
 * redis); latency runs at half the e2e rate, so it needs e2e unless BENCH_LATENCY_RATE
 * (tasks/s) gives its rate. Every phase when unset.
 */
const onlyPhases = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((phase) => phase.trim())) : undefined;
const runs = (phase: string) => !onlyPhases || onlyPhases.has(phase);

/** BENCH_QUICK=1: one short trial of each figure, to check that the bench runs (figures are noise). */
const quick = process.env.BENCH_QUICK === '1';
const trials = (count: number) => (quick ? 1 : count);

const settings = {
  // Short trials, alternating product and baseline, and the median of each: the machine's
  // speed drifts (other guests take CPU time), and alternation spreads the drift over both.
  endToEnd: { clients: 64, firstRunMs: quick ? 500 : 2000, warmupMs: 300, measureMs: quick ? 1000 : 2000, trials: trials(3), progressPerTask: 10 },
  // 20,000 tasks take about as long as the raw Piscina window (2 s): a window of 5,000
  // (0.5 s) varied by half between trials, its fixed costs (resume, the long poll, the
  // ramp-up) weighing on it as they do not on the baseline's.
  execution: { tasks: quick ? 2000 : 20000, trials: trials(3), concurrency: 64, measureMs: quick ? 1000 : 2000 },
  createRate: { connections: 32, seconds: quick ? 1 : 2, trials: trials(3), bulkRequests: quick ? 2 : 10 },
  fanOut: { sizes: quick ? [1000] : [1000, 5000], roundSeconds: 1.5, minProgressEvents: 20, maxProgressEvents: 2000, trials: trials(3), memoryAt: quick ? 1000 : 5000 },
  latency: { rateOfMaximum: 0.5, connections: 64, warmupMs: quick ? 1000 : 4000, measureMs: quick ? 1000 : 4000 },
  redisMode: { clients: 64, firstRunMs: quick ? 500 : 2000, warmupMs: 300, measureMs: quick ? 1000 : 2000, trials: trials(3) },
};

/** The Redis for the BullMQ peer, if one answers PING within a second. */
async function findRedis(): Promise<string | undefined> {
  const url = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG' ? url : undefined;
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

const started = performance.now();
const progress = (message: string) => console.error(`bench: ${message} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
const profileDir = process.env.BENCH_PROFILE === '1' ? `${reportsDir}profiles` : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });
const redisUrl = await findRedis();
const hasWrk = wrkAvailable();
const run: RunOptions = { threads: THREADS, profileDir, log: progress, redisUrl };
if (!redisUrl) progress('no Redis answered: the BullMQ figures are skipped (set BENCH_REDIS_URL)');
if (!hasWrk) progress('wrk is not installed: the create figures are skipped (apt-get install wrk)');

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

const notes: string[] = [];
const medianOf = (trials: readonly EndToEndTrial[], pick: (trial: EndToEndTrial) => number) =>
  trials.length === 0 ? Number.NaN : median(trials.map(pick));
const us = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} µs` : '-');

try {
  if (runs('e2e')) {
    progress('1/6 end to end (trivial tasks, then 10 progress reports each)');
    const e2e = await measureEndToEnd(run, settings.endToEnd);
    const bullmqName = `BullMQ 6.7, concurrency ${THREADS}, QueueEvents`;
    figures.push(
      figure({
        id: '1',
        name: `end to end, ${settings.endToEnd.clients} submitters: POST /api/tasks -> end seen on /api/events`,
        unit: 'tasks/s',
        product: medianOf(e2e.trivial.product, (trial) => trial.rate),
        baseline: medianOf(e2e.trivial.baseline, (trial) => trial.rate),
        baselineName: bullmqName,
        goal: { kind: 'ratio-at-least', value: 1.5 },
        detail: { trials: e2e.trivial, settings: settings.endToEnd },
      }),
      figure({
        id: '1.cpu',
        name: 'CPU per end-to-end task, every process (server+client; worker+Redis+client)',
        unit: 'µs',
        product: medianOf(e2e.trivial.product, totalCpuUs),
        baseline: medianOf(e2e.trivial.baseline, totalCpuUs),
        baselineName: 'BullMQ',
        goal: { kind: 'ratio-at-most', value: 1 },
        detail: {},
      }),
      figure({
        id: '4',
        name: `progress events delivered, ${settings.endToEnd.progressPerTask} per task, on /api/events`,
        unit: 'events/s',
        product: medianOf(e2e.progress.product, (trial) => trial.progressRate),
        baseline: medianOf(e2e.progress.baseline, (trial) => trial.progressRate),
        baselineName: 'BullMQ updateProgress via QueueEvents',
        goal: { kind: 'ratio-at-least', value: 2 },
        detail: { trials: e2e.progress },
      }),
    );
    const role = (trials: readonly EndToEndTrial[], name: string) => medianOf(trials, (trial) => trial.cpuPerTaskUs[name] ?? Number.NaN);
    const thread = (trials: readonly EndToEndTrial[], name: string, which: 'main' | 'other') =>
      medianOf(trials, (trial) => {
        const threads = trial.threadsPerTaskUs[name] ?? {};
        return which === 'main' ? (threads.main ?? 0) : Object.entries(threads).reduce((sum, [key, value]) => (key === 'main' ? sum : sum + value), 0);
      });
    const ours = e2e.trivial.product;
    const theirs = e2e.trivial.baseline;
    notes.push(
      `CPU per end-to-end task (figure 1.cpu): taskstream server ${us(role(ours, 'server'))} (main thread ${us(thread(ours, 'server', 'main'))}, ` +
        `other threads ${us(thread(ours, 'server', 'other'))}), its client ${us(role(ours, 'client'))}` +
        (theirs.length > 0
          ? `; BullMQ worker ${us(role(theirs, 'worker'))} (main ${us(thread(theirs, 'worker', 'main'))}), Redis ${us(role(theirs, 'redis'))}, its client ${us(role(theirs, 'client'))}`
          : ''),
    );
    for (const [label, trials] of [
      ['taskstream end-to-end client', ours],
      ['BullMQ end-to-end client', theirs],
      ['taskstream progress client', e2e.progress.product],
      ['BullMQ progress client', e2e.progress.baseline],
    ] as const) {
      if (trials.length === 0) continue;
      const cores = medianOf(trials, (trial) => trial.clientCores);
      notes.push(`client load: ${label} used ${cores.toFixed(2)} of a core`);
      if (cores > CLIENT_LIMIT_CORES) notes.push(`warning: the ${label} was near a full core: the client, not the server, may be the limit`);
    }
  }

  if (runs('execution')) {
    progress('2/6 execution (queue pre-filled, then resumed)');
    const execution = await measureExecution(run, settings.execution);
    const executionRate = median(execution.product.map((trial) => trial.rate));
    figures.push(
      figure({
        id: '2',
        name: `execution, ${settings.execution.tasks.toLocaleString('en-US')} no-op tasks pre-filled, then resumed`,
        unit: 'tasks/s',
        product: executionRate,
        baseline: median(execution.raw),
        baselineName: `raw Piscina no-op, ${THREADS} threads`,
        goal: { kind: 'ratio-at-least', value: 0.4 },
        detail: { trials: execution, settings: settings.execution },
      }),
      figure({
        id: '2.b',
        name: 'execution, the same',
        unit: 'tasks/s',
        product: executionRate,
        baseline: execution.bullmq.length > 0 ? median(execution.bullmq) : Number.NaN,
        baselineName: `BullMQ Worker draining as many no-op jobs`,
        goal: { kind: 'ratio-at-least', value: 3 },
        detail: {},
      }),
    );
    notes.push(`CPU per executed task, server process: ${us(median(execution.product.map((trial) => trial.cpuPerTaskUs)))}`);
  }

  if (hasWrk && runs('create')) {
    progress('3/6 create rate (wrk) and bulk create');
    const createRate = await measureCreateRate(run, settings.createRate);
    const singleRate = median(createRate.product.map((trial) => trial.rate));
    figures.push(
      figure({
        id: '3',
        name: `create, POST /api/tasks, queue paused, wrk -t1 -c${settings.createRate.connections}`,
        unit: 'req/s',
        product: singleRate,
        baseline: median(createRate.baseline.map((trial) => trial.rate)),
        baselineName: 'bare Hono POST, same JSON, same wrk',
        goal: { kind: 'ratio-at-least', value: 0.6 },
        detail: { trials: createRate, settings: settings.createRate },
      }),
      figure({
        id: '3.bulk',
        name: 'bulk create, POST /api/tasks/batch, 1,000 items a request',
        unit: 'tasks/s',
        product: median(createRate.bulk),
        baseline: singleRate,
        baselineName: 'single create, figure 3',
        goal: { kind: 'none' },
        detail: {},
      }),
    );
    const wrkCores = Math.max(...[...createRate.product, ...createRate.baseline].map((trial) => trial.clientCores));
    notes.push(
      `client load: wrk used at most ${wrkCores.toFixed(2)} of a core; server CPU per create ${us(median(createRate.product.map((trial) => trial.serverCpuPerRequestUs)))} ` +
        `(bare Hono ${us(median(createRate.baseline.map((trial) => trial.serverCpuPerRequestUs)))})`,
    );
    if (wrkCores > CLIENT_LIMIT_CORES) notes.push('warning: wrk was near a full core: the client, not the server, may be the limit');
  }

  if (runs('fanout')) {
    progress('4/6 fan-out and memory per stream');
    const fanOut = await measureFanOut(run, settings.fanOut);
    for (const [subscribers, deliveries] of fanOut.deliveries) {
      figures.push(
        figure({
          id: `5.${subscribers}`,
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
        id: '6',
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
  }

  const endToEndRate = figures.find((entry) => entry.id === '1')?.product;
  const fixedLatencyRate = Number(process.env.BENCH_LATENCY_RATE) || undefined;
  if (runs('latency') && (endToEndRate !== undefined || fixedLatencyRate !== undefined)) {
    const rate = fixedLatencyRate ?? Math.round(endToEndRate! * settings.latency.rateOfMaximum);
    progress(`5/6 latency at ${rate} tasks/s`);
    const latency = await measureLatency(run, { ...settings.latency, rate });
    const latencyDetail = { rate, ...latency, settings: settings.latency };
    figures.push(
      figure({
        id: '7.p50',
        name: `latency p50, ctx.progress -> client, ${rate} tasks/s`,
        unit: 'ms',
        product: latency.product.p50Ms,
        baseline: latency.baseline.p50Ms,
        baselineName: 'node:http + Piscina',
        goal: { kind: 'none' },
        detail: latencyDetail,
      }),
      figure({
        id: '7.p99',
        name: `latency p99, ctx.progress -> client, ${rate} tasks/s`,
        unit: 'ms',
        product: latency.product.p99Ms,
        baseline: latency.baseline.p99Ms,
        baselineName: 'node:http + Piscina',
        goal: { kind: 'product-at-most', value: 5 },
        detail: latencyDetail,
      }),
    );
  }

  if (runs('redis') && redisUrl) {
    progress('6/6 Redis mode, one and two instances, against BullMQ on the same Redis');
    const redisMode = await measureRedisMode(run, settings.redisMode);
    if (redisMode) {
      const rateOf = (trials: readonly RedisModeTrial[]) => median(trials.map((trial) => trial.rate));
      const commandsOf = (trials: readonly RedisModeTrial[]) => median(trials.map((trial) => trial.commandsPerTask));
      const bullmqName = `BullMQ 6.7 alone, concurrency ${THREADS}, QueueEvents`;
      figures.push(
        figure({
          id: '8.1',
          name: `Redis mode, 1 instance, end to end, ${settings.redisMode.clients} submitters`,
          unit: 'tasks/s',
          product: rateOf(redisMode.one),
          baseline: rateOf(redisMode.bullmq),
          baselineName: bullmqName,
          goal: { kind: 'none' },
          detail: { trials: redisMode, settings: settings.redisMode },
        }),
        figure({
          id: '8.2',
          name: `Redis mode, 2 instances (${THREADS} threads each), end to end`,
          unit: 'tasks/s',
          product: rateOf(redisMode.two),
          baseline: rateOf(redisMode.bullmq),
          baselineName: bullmqName,
          goal: { kind: 'none' },
          detail: {},
        }),
        figure({
          id: '8.cmd',
          name: 'Redis mode, Redis commands per trivial task (INFO stats)',
          unit: 'commands',
          product: commandsOf(redisMode.one),
          baseline: commandsOf(redisMode.bullmq),
          baselineName: 'BullMQ commands per job, same loop',
          goal: { kind: 'none' },
          detail: { twoInstances: commandsOf(redisMode.two) },
        }),
      );
      notes.push(`Redis commands per task with 2 instances: ${commandsOf(redisMode.two).toFixed(1)} (INFO stats counts every client of the Redis: run on a Redis nothing else uses)`);
    }
  }
} finally {
  killAllChildren();
  clearTimeout(deadline);
}

const wallSeconds = (performance.now() - started) / 1000;
const loadAverageAtEnd = Math.round(os.loadavg()[0]! * 100) / 100;
const stealShare = Math.round(steal.fraction() * 1000) / 1000;
console.log(formatTable(machine, figures, wallSeconds));
console.log('');
for (const note of notes) console.log(note);
if (!redisUrl) console.log('BullMQ figures skipped: no Redis answered (start one, or set BENCH_REDIS_URL)');
if (!hasWrk) console.log('create figures skipped: wrk is not installed (apt-get install wrk)');
console.log(`load average at end: ${loadAverageAtEnd}; CPU time stolen by the hypervisor during the run: ${(stealShare * 100).toFixed(1)} %`);
// The bench itself keeps about cores + 1 threads busy; more than that means others competed.
if (Math.max(machine.loadAverage, loadAverageAtEnd) > machine.cores + 2) {
  console.log('warning: other processes competed for the CPU during the run: compare with a run on a quiet machine');
}
mkdirSync(reportsDir, { recursive: true });
writeFileSync(
  reportFile,
  `${JSON.stringify({ date: new Date().toISOString(), machine, loadAverageAtEnd, stealShare, threads: THREADS, wallSeconds, figures, notes }, replacer, 2)}\n`,
);
console.log(`written: ${reportFile}`);

/** Maps (per-size trials) become plain objects in the JSON. */
function replacer(_key: string, value: unknown) {
  return value instanceof Map ? Object.fromEntries(value) : value;
}

// `npm run chaos`: a mixed, hostile workload against the real service in its own process,
// on loopback only, bounded in tasks and time. Prints its figures and every violation, and
// exits 1 if there was any. Settings: chaos/settings.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AllTasksObserver } from './all-tasks-observer.ts';
import { Api } from './api.ts';
import { checkTasks } from './checks.ts';
import { withDeadline } from './deadline.ts';
import { Ledger } from './ledger.ts';
import { checkMemory, type MemoryFigures } from './memory-check.ts';
import { Random } from './random.ts';
import { formatReport, percentile, violationsOf, type ChaosReport } from './report.ts';
import { allTaskModules, ServiceProcess } from './service-process.ts';
import { loadSettings } from './settings.ts';
import { checkServiceState, clearEndedTasks, waitForNoStreams } from './service-state.ts';
import { shutdownPhase, type ShutdownFigures } from './shutdown-phase.ts';
import { StreamClients } from './stream-clients.ts';
import { Violations } from './violations.ts';
import { Workload } from './workload.ts';

/** The service's settings for the run: few threads and a short queue, so creates are refused. */
export const SERVICE_ENV = {
  MAX_WORKERS: '2',
  MAX_QUEUE: '6',
  CANCEL_GRACE_MS: '150',
  TASK_TIMEOUT_MS: '10000',
  SHUTDOWN_GRACE_MS: '2000',
  // Flood tasks send up to 150 updates: nothing is thinned, so every client sees every seq.
  PROGRESS_HISTORY: '1000',
  // Enough for the all-tasks stream to resume after its short drops; small enough to stay out of the memory figures.
  EVENT_HISTORY: '5000',
  WORKER_MAX_HEAP_MB: '64',
  TASK_MODULES: allTaskModules().join(','),
};

const settings = loadSettings();
const started = performance.now();
const log = (message: string) => process.stderr.write(`chaos ${((performance.now() - started) / 1000).toFixed(1)}s: ${message}\n`);
log(
  `seed ${settings.seed}, ${settings.tasks} tasks, ${settings.lanes} lanes, deadline ${settings.deadlineMs} ms` +
    (settings.instances > 1 ? `, ${settings.instances} instances` : ''),
);

const random = new Random(settings.seed);
const violations = new Violations();
const scratchDir = mkdtempSync(join(tmpdir(), 'taskstream-chaos-'));
const service = new ServiceProcess(SERVICE_ENV);
/**
 * More instances on the same Redis (CHAOS_INSTANCES): requests and stream sessions go to
 * each in turn. They stop before the shutdown phase, which is the first instance's.
 */
const peers = Array.from({ length: settings.instances - 1 }, () => new ServiceProcess(SERVICE_ENV));
let peersStopped = false;
let exitCode: number | string | undefined;
const memory: MemoryFigures = { before: undefined, after: undefined, peakRssBytes: undefined };
const ledger = new Ledger(violations);
let observer: AllTasksObserver | undefined;
let clients: StreamClients | undefined;
let api: Api | undefined;
let warmUp: Workload | undefined;
let main: Workload | undefined;
let warmUpTasks = 0;
let shutdown: ShutdownFigures | undefined;

const deadline = new Promise<never>((_, reject) =>
  setTimeout(() => reject(new Error(`the run took longer than CHAOS_DEADLINE_MS (${settings.deadlineMs} ms)`)), settings.deadlineMs).unref(),
);
/** Set just before the run sends SIGTERM itself. */
let stopping = false;
const died = Promise.race(
  [service, ...peers].map((instance) =>
    instance.exited.then((code) => {
      if (stopping || (instance !== service && peersStopped)) return new Promise<never>(() => {});
      throw new Error(`a service process exited (${code}) during the run: ${instance.stderr.slice(-2000)}`);
    }),
  ),
);
died.catch(() => {});

try {
  await Promise.race([
    (async () => {
      const url = await service.url;
      log(`service at ${url} (pid ${service.child.pid})`);
      const urls = [url];
      for (const peer of peers) {
        urls.push(await peer.url);
        log(`another instance at ${urls.at(-1)} (pid ${peer.child.pid})`);
      }
      api = new Api(urls, violations);
      observer = new AllTasksObserver(url, ledger, violations, random.fork());
      await observer.start();
      clients = new StreamClients(urls, violations);
      // Open streams are counted per instance: the observer's is on the first one.
      const waitForStreams = async (observers: number, report?: Violations) => {
        for (const [index, each] of urls.entries()) await waitForNoStreams(new Api(each, violations), index === 0 ? observers : 0, report);
      };
      const workload = (tasks: number) => new Workload({ api: api!, ledger, clients: clients!, violations, tasks, scratchDir });

      // Warm-up: every worker thread loads its modules, so the baseline is a working service's.
      warmUp = workload(Math.min(12, settings.tasks));
      await warmUp.run(4, random.fork(), { completes: 1 });
      await warmUp.settle(60_000);
      await clearEndedTasks(api);
      await waitForStreams(1);
      memory.before = await service.memory();
      warmUpTasks = ledger.acceptedCount;
      log(`warm-up done (${ledger.acceptedCount} tasks); running ${settings.tasks} tasks`);

      main = workload(settings.tasks);
      const progress = setInterval(() => log(`${ledger.acceptedCount} tasks accepted, ${violations.count} violations`), 5000);
      try {
        await main.run(settings.lanes, random.fork());
        await main.settle(120_000);
      } finally {
        clearInterval(progress);
      }
      const unfinished = [...ledger.tasks.values()].filter((task) => task.accepted && !task.terminal);
      await withDeadline(Promise.all(unfinished.map((task) => ledger.ended(task.id))), 'every task to end', 30_000).catch(() => {});

      // Tasks whose lane stopped waiting: their final snapshot now.
      for (const task of ledger.tasks.values()) {
        if (!task.accepted || !task.terminal || task.finalSnapshot || task.deleted) continue;
        const snapshot = await api.get(task.id);
        if (snapshot.status === 200) task.finalSnapshot = snapshot.body;
      }

      // Nothing may be left queued or running; then the memory the run leaves behind.
      await checkServiceState(api, violations);
      await clearEndedTasks(api);
      clients.closeAll();
      await observer.stop();
      await waitForStreams(0, violations);
      memory.after = await service.memory();
      memory.peakRssBytes = memory.after.peakRssBytes;
      checkMemory(memory, violations);
      const health = await api.request('GET', '/healthz');
      if (health.status !== 200) violations.add('service', `/healthz answered ${health.status}`);

      if (peers.length > 0) {
        log(`stopping the other ${peers.length === 1 ? 'instance' : 'instances'}`);
        peersStopped = true;
        api.useOnly(url);
        await stopPeers();
      }
      log('stopping the service with tasks in flight');
      stopping = true;
      shutdown = await shutdownPhase({
        url,
        api,
        service,
        ledger,
        violations,
        random: random.fork(),
        scratchDir,
        shutdownGraceMs: Number(SERVICE_ENV.SHUTDOWN_GRACE_MS),
        // Redis mode (REDIS_URL): queued tasks outlive the process, for the next one.
        restart: process.env.REDIS_URL ? () => new ServiceProcess(SERVICE_ENV) : undefined,
      });
    })(),
    deadline,
    died,
  ]);
} catch (error) {
  violations.add('run', (error as Error).message);
  if (main) main.stopped = true;
  if (warmUp) warmUp.stopped = true;
  clients?.closeAll();
  await observer?.stop().catch(() => {});
} finally {
  if (!peersStopped) {
    peersStopped = true;
    await stopPeers();
  }
  exitCode = await service.stop(15_000).catch((error: Error) => {
    violations.add('service', error.message);
    return undefined;
  });
  if (exitCode !== undefined && exitCode !== 0) violations.add('service', `exited ${exitCode} after SIGTERM, not 0`);
  for (const entry of service.errorLogs) violations.add('error log', entry.line);
  rmSync(scratchDir, { recursive: true, force: true });
}

/** Stops the other instances: each must exit 0 on SIGTERM, having logged no error. */
async function stopPeers(): Promise<void> {
  for (const [index, peer] of peers.entries()) {
    const code = await peer.stop(15_000).catch((error: Error) => error.message);
    if (code !== 0) violations.add('service', `instance ${index + 2} exited ${code} after SIGTERM, not 0`);
    for (const entry of peer.errorLogs) violations.add('error log', `instance ${index + 2}: ${entry.line}`);
  }
}

const figures = checkTasks(ledger, violations);
const tally = (tallies: (Map<string, number> | undefined)[]) => {
  const merged: Record<string, number> = {};
  for (const counts of tallies) for (const [name, count] of counts ?? []) merged[name] = (merged[name] ?? 0) + count;
  return merged;
};
const report: ChaosReport = {
  seed: settings.seed,
  durationS: (performance.now() - started) / 1000,
  instances: settings.instances,
  tasks: {
    accepted: ledger.acceptedCount,
    warmUp: warmUpTasks,
    manualRetries: (warmUp?.scenarioCounts.get('manual retry') ?? 0) + (main?.scenarioCounts.get('manual retry') ?? 0),
    refused: (warmUp?.refusals.total ?? 0) + (main?.refusals.total ?? 0),
    scenarios: tally([warmUp?.scenarioCounts.counts, main?.scenarioCounts.counts]),
  },
  terminalEvents: Object.fromEntries(figures.terminals),
  cancels: tally([warmUp?.cancels.counts, main?.cancels.counts]),
  actions: tally([warmUp?.actions.counts, main?.actions.counts]),
  reconnects: {
    allTasksStream: observer?.reconnects ?? 0,
    taskStreams: clients?.taskReconnects ?? 0,
    multiplexedStreams: clients?.multiplexedReconnects ?? 0,
  },
  streamSessions: {
    taskStreams: clients?.taskSessions ?? 0,
    multiplexedStreams: clients?.multiplexedSessions ?? 0,
    clientViewsChecked: figures.clientViews,
  },
  cancelToCancelledMs: {
    count: figures.cancelLatenciesMs.length,
    p50: percentile(figures.cancelLatenciesMs, 50),
    p99: percentile(figures.cancelLatenciesMs, 99),
    max: percentile(figures.cancelLatenciesMs, 100),
    slowest: figures.slowestCancel?.story,
  },
  requests: {
    total: api?.requests ?? 0,
    byStatus: Object.fromEntries([...(api?.statuses ?? new Map<number, number>())].map(([status, count]) => [String(status), count])),
  },
  memory,
  cpuS: {
    service: memory.after ? memory.after.cpuMs / 1000 : undefined,
    run: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  },
  shutdown,
  exitCode,
  violations: violationsOf(violations),
};
if (settings.reportFile) writeFileSync(settings.reportFile, `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`${formatReport(report)}\n`);
process.exit(violations.count === 0 ? 0 : 1);

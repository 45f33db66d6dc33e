// Figures 3 and 4: one task's events to thousands of per-task streams, and the memory each
// idle stream holds, against plain node:http writing the same frames.
import { setTimeout as sleep } from 'node:timers/promises';
import { closeAll, profiled, startRawSseServer, startSubscribers, startTaskstream, type RunOptions } from '../lib/children.ts';
import { createTask, pauseQueue, resumeQueue } from '../lib/service-api.ts';

export interface FanOutSize {
  subscribers: number;
  /** Progress updates of the one task; each subscriber also gets task_started and task_completed. */
  progressEvents: number;
}

export interface FanOutSettings {
  /** Subscriber counts to measure. */
  sizes: number[];
  /**
   * Each measured round delivers about this long at the baseline's speed: the event count
   * is set from a first, shorter baseline round, so the phase takes the same time on a
   * fast machine and a slow one.
   */
  roundSeconds: number;
  /** Progress updates in that first round, and the least in a measured one. */
  minProgressEvents: number;
  maxProgressEvents: number;
  trials: number;
  /** The subscriber count at which memory per idle stream is measured. */
  memoryAt: number;
}

export interface Delivery {
  rate: number;
  frames: number;
  /** Fewer frames than this means some were coalesced or a stream was dropped. */
  expectedFrames: number;
  seconds: number;
  /** Streams the server ended itself (the rest closed before their end). */
  endedCleanly: number;
}

/** Lets closed sockets and collected garbage settle between rounds. */
const SETTLE_MS = 300;

export async function measureFanOut(run: RunOptions, settings: FanOutSettings) {
  const service = startTaskstream(run, { MAX_QUEUE: '1000000', HEARTBEAT_MS: '600000' });
  const raw = startRawSseServer(run);
  const client = startSubscribers();
  try {
    const [{ url: serviceUrl }, { url: rawUrl }] = await Promise.all([service.ready, raw.ready, client.ready]);
    // Tasks wait in the queue until every subscriber is in; resume starts the one task.
    await pauseQueue(serviceUrl);

    /** One round: connect, optionally read the server's memory, deliver, close. */
    const round = async (side: 'product' | 'baseline', size: FanOutSize, measureMemory: boolean, profileName?: string) => {
      const readMemory = () =>
        side === 'product' ? service.call('memory', undefined, 30_000) : raw.call('memory', undefined, 30_000);
      const url =
        side === 'product'
          ? `${serviceUrl}/api/tasks/${await createTask(serviceUrl, { type: 'bench_flood', input: { count: size.progressEvents } })}/events`
          : `${rawUrl}/events`;
      const before = measureMemory ? await readMemory() : undefined;
      await client.call('connect', { url, count: size.subscribers }, 60_000);
      let perStream: Record<keyof NodeJS.MemoryUsage, number> | undefined;
      if (before) {
        await sleep(SETTLE_MS);
        const after = await readMemory();
        const growth = (key: keyof NodeJS.MemoryUsage) => (after[key] - before[key]) / size.subscribers;
        perStream = {
          rss: growth('rss'),
          heapTotal: growth('heapTotal'),
          heapUsed: growth('heapUsed'),
          external: growth('external'),
          arrayBuffers: growth('arrayBuffers'),
        };
      }
      await client.call('arm', undefined, 5_000);
      const deliver = async () => {
        const [result] = await Promise.all([
          client.call('done', { timeoutMs: 90_000 }, 100_000),
          side === 'product' ? resumeQueue(serviceUrl) : raw.call('publish', { count: size.progressEvents }, 100_000),
        ]);
        return result;
      };
      const result = side === 'product' && profileName ? await profiled(run, service, profileName, deliver) : await deliver();
      if (side === 'product') await pauseQueue(serviceUrl);
      await client.call('close', undefined, 10_000);
      await sleep(SETTLE_MS);
      const delivery: Delivery = {
        rate: result.rate,
        frames: result.frames,
        expectedFrames: size.subscribers * (size.progressEvents + 2),
        seconds: result.seconds,
        endedCleanly: result.endedCleanly,
      };
      if (delivery.frames !== delivery.expectedFrames || delivery.endedCleanly !== size.subscribers) {
        run.log(
          `warning: ${side} delivered ${delivery.frames} of ${delivery.expectedFrames} frames; ${delivery.endedCleanly} of ${size.subscribers} streams ended cleanly`,
        );
      }
      return { delivery, perStream };
    };

    // A small round first on each side, so code is compiled before memory is read.
    for (const side of ['baseline', 'product'] as const) await round(side, { subscribers: 20, progressEvents: 20 }, false);

    // Memory first, before larger rounds have grown either heap.
    run.log(`memory per stream at ${settings.memoryAt} streams`);
    const memoryRound = { subscribers: settings.memoryAt, progressEvents: settings.minProgressEvents };
    const memory = {
      baseline: (await round('baseline', memoryRound, true)).perStream!,
      product: (await round('product', memoryRound, true)).perStream!,
    };

    const deliveries = new Map<number, { progressEvents: number; product: Delivery[]; baseline: Delivery[] }>();
    for (const subscribers of settings.sizes) {
      run.log(`fan-out to ${subscribers} streams: sizing the rounds`);
      const sizing = await round('baseline', { subscribers, progressEvents: settings.minProgressEvents }, false);
      const perStream = (sizing.delivery.rate * settings.roundSeconds) / subscribers - 2;
      const size = {
        subscribers,
        progressEvents: Math.round(Math.min(settings.maxProgressEvents, Math.max(settings.minProgressEvents, perStream))),
      };
      const byN = { progressEvents: size.progressEvents, product: [] as Delivery[], baseline: [] as Delivery[] };
      deliveries.set(subscribers, byN);
      for (let trial = 0; trial < settings.trials; trial++) {
        for (const side of ['baseline', 'product'] as const) {
          run.log(`fan-out ${side}, ${subscribers} streams x ${size.progressEvents + 2} events, trial ${trial + 1}`);
          byN[side].push((await round(side, size, false, `fan-out-${subscribers}-${trial + 1}`)).delivery);
        }
      }
    }
    return { deliveries, memory };
  } finally {
    await closeAll([service, raw, client]);
  }
}

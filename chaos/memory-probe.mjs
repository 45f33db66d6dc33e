// Loaded into the service process with `--import` (and `--expose-gc`) by the chaos run only:
// answers `{ kind: 'memory', id }` over the IPC channel with the process's memory after a
// full collection, and its CPU time so far (a MemoryReply, see memory-protocol.ts). The service knows nothing of it.
// Plain JavaScript: worker threads inherit the flags that load it, and on Node 20 a worker's
// `--import` cannot load TypeScript.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isMainThread } from 'node:worker_threads';

if (isMainThread && process.send) {
  process.on('message', async (message) => {
    if (message?.kind !== 'memory') return;
    if (typeof globalThis.gc !== 'function') throw new Error('the chaos memory probe needs --expose-gc');
    for (let i = 0; i < 3; i++) {
      globalThis.gc();
      await nextTurn();
    }
    const { rss, heapUsed, external } = process.memoryUsage();
    process.send({
      kind: 'memory',
      id: message.id,
      rssBytes: rss,
      heapUsedBytes: heapUsed,
      externalBytes: external,
      // The kernel's high-water mark of this process's resident memory, in KiB.
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      // CPU time of the whole process (every thread) so far.
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    });
  });
  // The channel must not keep the service alive once it is asked to stop.
  process.channel?.unref();
}

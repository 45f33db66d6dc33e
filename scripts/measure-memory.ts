/**
 * Fills a real service with large inputs and results and prints its RSS as it goes, with
 * MAX_RETAINED_BYTES and without: the bounded run should level off, the other should not.
 *
 *   npx tsx scripts/measure-memory.ts
 *
 * Each task is a `batch` of `uppercase` over MEASURE_ITEMS items of 100,000 characters, so
 * its input and its result are about MEASURE_ITEMS × 0.1 MB each. The service runs in its
 * own process (src/main.ts under tsx, in memory); RSS is read from /proc, the retained bytes
 * from /metrics. Settings, from the environment: MEASURE_BOUND_MIB (64), MEASURE_TASKS
 * (1200, bounded run), MEASURE_UNBOUNDED_TASKS (400), MEASURE_ITEMS (5), MEASURE_LANES
 * (4 tasks in flight), MEASURE_EVERY (100: a line every this many tasks).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const setting = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const boundMiB = setting('MEASURE_BOUND_MIB', 64);
const boundedTasks = setting('MEASURE_TASKS', 1200);
const unboundedTasks = setting('MEASURE_UNBOUNDED_TASKS', 400);
const itemCount = setting('MEASURE_ITEMS', 5);
const lanes = setting('MEASURE_LANES', 4);
const every = setting('MEASURE_EVERY', 100);

const root = fileURLToPath(new URL('..', import.meta.url));
const body = JSON.stringify({
  type: 'batch',
  input: { items: Array.from({ length: itemCount }, (_, i) => `${i}`.padEnd(100_000, 'x')), operation: 'uppercase' },
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resident set size of a process in MiB, from /proc. */
function rssMiB(pid: number): number {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(line?.[1] ?? 0) / 1024;
}

async function retainedMiB(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^taskstream_retained_bytes (\d+)$/m.exec(text)?.[1] ?? NaN) / MiB;
}

async function start(env: Record<string, string>): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), LOG_LEVEL: 'warn', MAX_WORKERS: '2', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) return { child, base };
    } catch {
      // not listening yet
    }
    if (tries > 600) throw new Error('the service did not become ready in 60 s');
    await sleep(100);
  }
}

/** Runs `total` tasks, `lanes` at a time, each to its end; prints a line every `every` tasks. */
async function fill(label: string, env: Record<string, string>, total: number): Promise<void> {
  const { child, base } = await start(env);
  const pid = child.pid!;
  const started = Date.now();
  let done = 0;
  let refused = 0;
  let most = 0;
  const rss: number[] = [];
  console.log(`\n${label}: ${total} tasks of ${(Buffer.byteLength(body) / MiB).toFixed(2)} MiB in and about as much out`);
  console.log('tasks  rss_mib  retained_mib  seconds');
  const line = async (count = done) => {
    const held = await retainedMiB(base);
    most = Math.max(most, held);
    rss.push(rssMiB(pid));
    console.log(`${String(count).padStart(5)}  ${rss.at(-1)!.toFixed(0).padStart(7)}  ${held.toFixed(1).padStart(12)}  ${((Date.now() - started) / 1000).toFixed(1).padStart(7)}`);
  };
  await line();
  let next = 0;
  const lane = async () => {
    while (next < total) {
      next++;
      const created = await fetch(`${base}/api/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (created.status !== 201) {
        refused++;
        await created.arrayBuffer();
        next--;
        await sleep(100);
        continue;
      }
      const { task_id } = (await created.json()) as { task_id: string };
      const ended = await fetch(`${base}/api/tasks/${task_id}/wait?timeout_ms=120000`);
      // The answer carries the result (or a 404 if the task was already evicted): read it all.
      await ended.arrayBuffer();
      const count = ++done;
      if (count % every === 0) await line(count);
      else if (count % 10 === 0) most = Math.max(most, await retainedMiB(base));
    }
  };
  try {
    await Promise.all(Array.from({ length: lanes }, lane));
    if (done % every !== 0) await line();
    const tail = rss.slice(Math.floor(rss.length / 2));
    console.log(
      `${label}: RSS ${rss[0]!.toFixed(0)} → ${rss.at(-1)!.toFixed(0)} MiB (second half ${Math.min(...tail).toFixed(0)}–${Math.max(...tail).toFixed(0)} MiB), ` +
        `retained at most ${most.toFixed(1)} MiB, ${refused} creates refused, ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
  } finally {
    child.kill('SIGKILL');
  }
}

await fill(`MAX_RETAINED_BYTES=${boundMiB} MiB`, { MAX_RETAINED_BYTES: String(boundMiB * MiB) }, boundedTasks);
await fill('unbounded (MAX_RETAINED_BYTES=64 GiB)', { MAX_RETAINED_BYTES: String(64 * 1024 * MiB) }, unboundedTasks);

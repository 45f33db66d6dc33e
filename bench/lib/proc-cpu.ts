// CPU time of processes and their threads, read from /proc/<pid>/stat and
// /proc/<pid>/task/<tid>/stat at a window's edges (Linux only; elsewhere nothing is read).
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of utime/stime in /proc (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface ThreadTime {
  tid: number;
  /** The thread's name (comm), e.g. `node`, `libuv-worker`, `V8 DefaultWorke`. */
  name: string;
  /** User + system CPU time, in microseconds. */
  cpuUs: number;
}

export interface ProcessTime {
  pid: number;
  cpuUs: number;
  threads: ThreadTime[];
}

/** utime + stime of one stat line, in microseconds; undefined if unreadable. */
function statTime(path: string): { name: string; cpuUs: number } | undefined {
  let line: string;
  try {
    line = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  // The name is in parentheses and may hold spaces: fields are counted after the last ')'.
  const close = line.lastIndexOf(')');
  const name = line.slice(line.indexOf('(') + 1, close);
  const fields = line.slice(close + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the state field (3).
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { name, cpuUs: (ticks * 1_000_000) / TICKS_PER_SECOND };
}

export function readProcessTime(pid: number): ProcessTime | undefined {
  const total = statTime(`/proc/${pid}/stat`);
  if (!total) return undefined;
  const threads: ThreadTime[] = [];
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    // no per-thread figures
  }
  for (const tid of tids) {
    const time = statTime(`/proc/${pid}/task/${tid}/stat`);
    if (time) threads.push({ tid: Number(tid), ...time });
  }
  return { pid, cpuUs: total.cpuUs, threads };
}

export type CpuSnapshot = Record<number, ProcessTime | undefined>;

export const snapshotCpu = (pids: readonly number[]): CpuSnapshot =>
  Object.fromEntries(pids.map((pid) => [pid, readProcessTime(pid)]));

/** CPU spent between two snapshots, per process, with threads grouped by role. */
export interface CpuUse {
  pid: number;
  cpuUs: number;
  /** The main thread (tid = pid), and the other threads by name, summed. */
  byThread: Record<string, number>;
}

export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUse[] {
  const uses: CpuUse[] = [];
  for (const [key, end] of Object.entries(after)) {
    const start = before[Number(key)];
    if (!end || !start) continue;
    const startByTid = new Map(start.threads.map((thread) => [thread.tid, thread.cpuUs]));
    const byThread: Record<string, number> = {};
    for (const thread of end.threads) {
      // A thread born inside the window counts from zero.
      const spent = thread.cpuUs - (startByTid.get(thread.tid) ?? 0);
      if (spent <= 0) continue;
      const role = thread.tid === end.pid ? 'main' : thread.name;
      byThread[role] = (byThread[role] ?? 0) + spent;
    }
    uses.push({ pid: end.pid, cpuUs: end.cpuUs - start.cpuUs, byThread });
  }
  return uses;
}

import type { MemoryReply } from './memory-protocol.ts';
import type { Violations } from './violations.ts';

/** Everything a run prints, and writes to CHAOS_REPORT as JSON. */
export interface ChaosReport {
  seed: number;
  durationS: number;
  /** Instances of the service that ran side by side (CHAOS_INSTANCES). */
  instances: number;
  tasks: { accepted: number; warmUp: number; manualRetries: number; refused: number; scenarios: Record<string, number> };
  terminalEvents: Record<string, number>;
  cancels: Record<string, number>;
  actions: Record<string, number>;
  reconnects: { allTasksStream: number; taskStreams: number; multiplexedStreams: number };
  streamSessions: { taskStreams: number; multiplexedStreams: number; clientViewsChecked: number };
  cancelToCancelledMs: { count: number; p50: number | null; p99: number | null; max: number | null; slowest?: string | undefined };
  requests: { total: number; byStatus: Record<string, number> };
  memory: {
    before: MemoryReply | undefined;
    after: MemoryReply | undefined;
    /** The most the service process held resident at any moment (the kernel's high-water mark). */
    peakRssBytes: number | undefined;
  };
  /** CPU time used by the service process (all threads) and by this run, in seconds. */
  cpuS: { service: number | undefined; run: number };
  /** The last phase: SIGTERM with tasks queued, running and between attempts. */
  shutdown: { tasks: number; exitMs: number | undefined } | undefined;
  exitCode: number | string | undefined;
  violations: { count: number; byKind: Record<string, number>; items: { kind: string; detail: string }[] };
}

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const mib = (bytes: number | undefined) => (bytes === undefined ? '?' : `${(bytes / 1048576).toFixed(1)} MiB`);
const ms = (value: number | null) => (value === null ? '-' : `${value.toFixed(1)} ms`);
const list = (record: Record<string, number>) =>
  Object.entries(record)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');

/** The figures as lines of text, then each violation. */
export function formatReport(report: ChaosReport): string {
  const { tasks, memory, cancelToCancelledMs: latency } = report;
  const lines = [
    `seed ${report.seed}, ${report.durationS.toFixed(1)} s${report.instances > 1 ? `, ${report.instances} instances` : ''}`,
    `tasks            ${tasks.accepted} accepted (${tasks.warmUp} warm-up, ${tasks.manualRetries} by manual retry), ${tasks.refused} creates refused with 503 queue_full`,
    `scenarios        ${list(tasks.scenarios)}`,
    `terminal events  ${list(report.terminalEvents)}`,
    `cancels          ${list(report.cancels)}`,
    `deletes, retries ${list(report.actions)}`,
    `reconnects       all-tasks stream ${report.reconnects.allTasksStream}, task streams ${report.reconnects.taskStreams} (of ${report.streamSessions.taskStreams} connections), multiplexed streams ${report.reconnects.multiplexedStreams} (of ${report.streamSessions.multiplexedStreams}); ${report.streamSessions.clientViewsChecked} client views checked`,
    `cancel → task_cancelled  p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)} (${latency.count} cancels)`,
    ...(latency.slowest ? [`  slowest          ${latency.slowest}`] : []),
    `requests         ${report.requests.total}: ${list(report.requests.byStatus)}`,
    `memory (RSS)     before ${mib(memory.before?.rssBytes)}, peak ${mib(memory.peakRssBytes)}, after ${mib(memory.after?.rssBytes)}`,
    `memory (heap)    before ${mib(memory.before?.heapUsedBytes)}, after ${mib(memory.after?.heapUsedBytes)} (after a forced full GC)`,
    `CPU              service ${report.cpuS.service?.toFixed(1) ?? '?'} s, chaos run ${report.cpuS.run.toFixed(1)} s`,
    `shutdown         ${report.shutdown?.tasks ?? 0} tasks in flight at SIGTERM; exit ${report.exitCode ?? '-'} after ${report.shutdown?.exitMs === undefined ? '?' : `${(report.shutdown.exitMs / 1000).toFixed(2)} s`}`,
  ];
  const { violations } = report;
  if (violations.count === 0) {
    lines.push('violations       none');
  } else {
    lines.push(`VIOLATIONS       ${violations.count}: ${list(violations.byKind)}`);
    const shown = violations.items.slice(0, 200);
    for (const { kind, detail } of shown) lines.push(`  ✗ [${kind}] ${detail}`);
    if (violations.items.length > shown.length) lines.push(`  … and ${violations.items.length - shown.length} more (see CHAOS_REPORT)`);
  }
  return lines.join('\n');
}

export function violationsOf(violations: Violations): ChaosReport['violations'] {
  return { count: violations.count, byKind: Object.fromEntries(violations.byKind()), items: [...violations.all] };
}

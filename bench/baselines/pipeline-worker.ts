// The raw pipeline's Piscina worker: a no-op like bench_noop or, when asked, one message
// stamped like bench_stamp's progress.
import { parentPort } from 'node:worker_threads';

export interface PipelineJob {
  taskId: number;
  stamp: boolean;
}

export interface StampMessage {
  taskId: number;
  /** process.hrtime.bigint() when it was posted, in ns, as a decimal string. */
  stamp: string;
}

export default function run({ taskId, stamp }: PipelineJob): Record<string, never> {
  if (stamp) parentPort!.postMessage({ taskId, stamp: process.hrtime.bigint().toString() } satisfies StampMessage);
  return {};
}

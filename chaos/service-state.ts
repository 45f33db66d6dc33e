import type { Api } from './api.ts';
import { sleep } from './deadline.ts';
import type { Violations } from './violations.ts';

/** Once every task has ended: nothing queued or running, in the counts, the lists and the workers. */
export async function checkServiceState(api: Api, violations: Violations): Promise<void> {
  const stats = await api.request('GET', '/api/tasks/stats');
  const { tasks, workers, queue } = stats.body ?? {};
  if (tasks?.queued !== 0 || tasks?.running !== 0 || workers?.busy !== 0 || queue?.size !== 0) {
    violations.add('left over', `stats after every task ended: ${JSON.stringify(stats.body)}`);
  }
  for (const status of ['queued', 'running']) {
    const list = await api.request('GET', `/api/tasks?status=${status}&limit=1000`);
    const ids = (list.body?.tasks ?? []).map((task: { task_id: string }) => task.task_id);
    if (list.status !== 200 || ids.length > 0) violations.add('left over', `${status} tasks after every task ended: ${ids.join(', ') || list.status}`);
  }
}

/** Deletes every ended task (DELETE /api/tasks?status=…). */
export async function clearEndedTasks(api: Api): Promise<void> {
  for (const status of ['completed', 'failed', 'cancelled']) {
    await api.request('DELETE', `/api/tasks?status=${status}`);
  }
}

/** Waits until the service counts at most `expected` open streams; a violation if it never does. */
export async function waitForNoStreams(api: Api, expected: number, violations?: Violations): Promise<void> {
  let streams: number | undefined;
  for (let waited = 0; waited < 5000; waited += 50) {
    streams = (await api.request('GET', '/api/tasks/stats')).body?.streams;
    if (streams !== undefined && streams <= expected) return;
    await sleep(50);
  }
  violations?.add('left over', `${streams} streams still open 5 s after every client closed (at most ${expected} expected)`);
}

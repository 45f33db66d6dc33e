import { createTaskstreamClient, type Task } from '../client/index.ts';

/** Starts a `sample` task and long-polls until it ends: every path, body and answer is typed. */
export async function runSampleTask(baseUrl: string): Promise<Task> {
  const api = createTaskstreamClient(baseUrl);

  const created = await api.POST('/api/tasks', {
    body: { type: 'sample', input: { steps: 3, step_ms: 10 } },
  });
  if (created.error) {
    // A Problem (application/problem+json); for bad input, `errors` points at the fields.
    const [first] = created.error.errors ?? [];
    throw new Error(`${created.error.code}: ${first?.pointer ?? ''} ${first?.detail ?? created.error.detail}`);
  }

  const ended = await api.GET('/api/tasks/{task_id}/wait', {
    params: { path: { task_id: created.data.task_id }, query: { timeout_ms: 60_000 } },
  });
  if (ended.error) throw new Error(`${ended.error.code}: ${ended.error.detail}`);
  return ended.data; // a Task: `status` is one of the five statuses, `result` its output
}

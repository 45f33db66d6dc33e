// The few service calls the runner makes itself, between measurements (never measured).

async function call(url: string, body?: unknown): Promise<any> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`POST ${url} answered ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

export const createTask = async (baseUrl: string, body: unknown): Promise<string> =>
  (await call(`${baseUrl}/api/tasks`, body)).task_id as string;

export const pauseQueue = (baseUrl: string) => call(`${baseUrl}/api/queue/pause`);
export const resumeQueue = (baseUrl: string) => call(`${baseUrl}/api/queue/resume`);

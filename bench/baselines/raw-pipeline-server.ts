// The service's path built from nothing but node:http and Piscina: a POST runs a worker, its
// end becomes a task_completed frame on every open stream and, for bench_stamp, its stamped
// message a progress_update frame. Figure 5's baseline, and figure 1's ceiling.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawPool } from '../lib/raw-pool.ts';
import { serveCommands } from '../lib/rpc.ts';
import { progressData, RETRY_FRAME, SSE_HEADERS, sseFrame } from '../lib/sse-frame.ts';
import type { PipelineJob, StampMessage } from './pipeline-worker.ts';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const pool = rawPool(new URL('./pipeline-worker.ts', import.meta.url), threads);
const streams = new Set<ServerResponse>();
let lastTaskId = 0;
let lastPosition = 0;

const broadcast = (eventType: string, taskId: number, seq: number, data: unknown) => {
  const frame = sseFrame(++lastPosition, eventType, String(taskId), seq, data);
  for (const stream of streams) stream.write(frame);
};

pool.on('message', ({ taskId, stamp }: StampMessage) => broadcast('progress_update', taskId, 1, progressData(null, stamp)));

function create(request: IncomingMessage, response: ServerResponse) {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => (body += chunk));
  request.on('end', () => {
    const { type } = JSON.parse(body) as { type: string };
    const taskId = ++lastTaskId;
    pool.run({ taskId, stamp: type === 'bench_stamp' } satisfies PipelineJob).then(
      () => broadcast('task_completed', taskId, 2, { result: {} }),
      () => broadcast('task_failed', taskId, 2, { error: { code: 'task_error', message: 'failed' } }),
    );
    const json = JSON.stringify({ task_id: String(taskId) });
    response.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    response.end(json);
  });
}

const server = createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/api/tasks') return create(request, response);
  if (request.method === 'GET' && request.url === '/api/events') {
    response.writeHead(200, SSE_HEADERS);
    response.flushHeaders();
    response.socket?.setNoDelay(true);
    response.write(RETRY_FRAME);
    streams.add(response);
    response.on('close', () => streams.delete(response));
    return;
  }
  response.writeHead(404).end();
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;

export type RawPipelineServerCommands = Record<string, never>;
serveCommands({}, { url: `http://127.0.0.1:${port}` });

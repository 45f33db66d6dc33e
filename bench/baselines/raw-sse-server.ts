// Figures 3 and 4's baseline: plain node:http writing the same frames to every subscriber,
// from the same kind of source as the service's: messages from a worker thread.
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawPool } from '../lib/raw-pool.ts';
import { serveCommands } from '../lib/rpc.ts';
import { settledMemory } from '../lib/settled-memory.ts';
import { progressData, RETRY_FRAME, SSE_HEADERS, sseFrame } from '../lib/sse-frame.ts';
import type { FloodMessage } from './flood-worker.ts';

const pool = rawPool(new URL('./flood-worker.ts', import.meta.url), Number(process.env.BENCH_THREADS ?? 2));
const streams = new Set<ServerResponse>();

const server = createServer((request, response) => {
  if (request.method !== 'GET' || request.url !== '/events') {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, SSE_HEADERS);
  response.flushHeaders();
  response.socket?.setNoDelay(true);
  response.write(RETRY_FRAME);
  streams.add(response);
  response.on('close', () => streams.delete(response));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;

const broadcast = (frame: string) => {
  for (const stream of streams) stream.write(frame);
};

/**
 * One task's story to every open stream: started, `count` progress updates (one per worker
 * message, as they arrive), completed; then the streams end, as the service ends a task
 * stream.
 */
async function publish({ count }: { count: number }) {
  const taskId = randomUUID();
  const subscribers = streams.size;
  broadcast(sseFrame(1, 'task_started', taskId, 1, { attempt: 1, max_attempts: 1 }));
  const ended = new Promise<void>((resolve) => {
    const onMessage = (message: FloodMessage) => {
      if (message.kind === 'progress') {
        const seq = message.index + 1;
        broadcast(sseFrame(seq, 'progress_update', taskId, seq, progressData(message.index / count, `${message.index}`)));
      } else {
        pool.off('message', onMessage);
        resolve();
      }
    };
    pool.on('message', onMessage);
  });
  await Promise.all([pool.run({ count }), ended]);
  broadcast(sseFrame(count + 2, 'task_completed', taskId, count + 2, { result: { sent: count } }));
  for (const stream of streams) stream.end();
  return { subscribers, frames: count + 2 };
}

const commands = { publish, memory: () => settledMemory() };
export type RawSseServerCommands = typeof commands;
serveCommands(commands, { url: `http://127.0.0.1:${port}` });

// Figure 2's baseline: a bare Hono POST handler on @hono/node-server that parses the same JSON.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { serveCommands } from '../lib/rpc.ts';

const app = new Hono();
let nextId = 0;
app.post('/api/tasks', async (c) => {
  const body = await c.req.json<Record<string, unknown>>();
  return c.json({ task_id: String(++nextId), ...body }, 201);
});

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
await new Promise<void>((resolve) => server.once('listening', resolve));
const { port } = server.address() as AddressInfo;

export type HonoPostServerCommands = Record<string, never>;
serveCommands({}, { url: `http://127.0.0.1:${port}` });

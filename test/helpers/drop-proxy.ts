import { connect, createServer, type Socket } from 'node:net';

export interface DropProxy {
  readonly url: string;
  /** Client connections accepted so far. */
  readonly connections: number;
  /** Cuts every connection through the proxy at once, as a network drop does. */
  dropAll(): void;
  close(): void;
}

/** A TCP proxy to 127.0.0.1:`port` whose connections can all be cut at once. */
export async function startDropProxy(port: number): Promise<DropProxy> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as { port: number };
  const dropAll = () => sockets.forEach((socket) => socket.destroy());
  return {
    url: `http://127.0.0.1:${own}`,
    get connections() {
      return connections;
    },
    dropAll,
    close: () => {
      dropAll();
      server.close();
    },
  };
}

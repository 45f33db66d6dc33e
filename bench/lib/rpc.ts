// The message shapes between the bench runner and its child processes, over the IPC channel.

/** A child's commands: each takes one plain-data argument and answers plain data. */
export type Commands = Record<string, (args: any) => unknown>;

export interface Request {
  id: number;
  command: string;
  args: unknown;
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** The first message a child sends, once it is ready to take commands. */
export interface Ready {
  ready: unknown;
}

/**
 * Runs in a child: answers the runner's commands and announces `ready`. The child exits
 * when the runner goes away, so no process outlives a run, even one that crashed.
 */
export function serveCommands(commands: Commands, ready: unknown = {}): void {
  if (!process.send) throw new Error('a bench child must be started with an IPC channel');
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (message: Request) => {
    const handler = commands[message.command];
    let reply: Reply;
    try {
      if (!handler) throw new Error(`unknown command ${message.command}`);
      reply = { id: message.id, ok: true, result: await handler(message.args) };
    } catch (error) {
      reply = { id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    }
    process.send!(reply);
  });
  process.send({ ready } satisfies Ready);
}

// Figure 2's client: POSTs the same JSON body over many keep-alive connections, as fast as
// answers come back. Runs in its own process.
import { JsonPoster } from '../lib/json-poster.ts';
import { serveCommands } from '../lib/rpc.ts';

export interface PostLoadArgs {
  url: string;
  body: string;
  connections: number;
  warmupMs: number;
  measureMs: number;
  /** The only status that counts as success. */
  expectStatus: number;
}

async function run({ url, body, connections, warmupMs, measureMs, expectStatus }: PostLoadArgs) {
  const poster = new JsonPoster(url, connections);
  const windowStart = performance.now() + warmupMs;
  const windowEnd = windowStart + measureMs;
  let counted = 0;
  const unexpected: string[] = [];
  const connection = async () => {
    while (performance.now() < windowEnd && unexpected.length === 0) {
      const answer = await poster.post(body);
      if (answer.status !== expectStatus) {
        unexpected.push(`answered ${answer.status}: ${answer.body.slice(0, 200)}`);
        return;
      }
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) counted++;
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, connection));
  } finally {
    poster.close();
  }
  if (unexpected.length > 0) throw new Error(`POST ${url} ${unexpected[0]}`);
  return { rate: counted / (measureMs / 1000) };
}

const commands = { run };
export type PostLoadCommands = typeof commands;
serveCommands(commands);

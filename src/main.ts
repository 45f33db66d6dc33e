import { ConfigError, loadConfig } from './config.ts';
import { startTaskstream } from './server.ts';

let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}

const taskstream = await startTaskstream(config);
console.log(`taskstream listening on ${taskstream.url}`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    void taskstream.close().then(() => process.exit(0));
  });
}

// The product under test in its own process: the real service with the bench task types.
import { ConfigSchema } from '../../src/config.ts';
import { startTaskstream } from '../../src/server.ts';
import { CpuProfiler } from '../lib/cpu-profiler.ts';
import { serveCommands } from '../lib/rpc.ts';
import { settledMemory } from '../lib/settled-memory.ts';
import { benchTaskModules } from '../tasks/index.ts';

/** Environment variables (the service's own names) chosen by the phase, as JSON. */
const env = JSON.parse(process.env.BENCH_SERVICE_ENV ?? '{}') as Record<string, string>;
const config = ConfigSchema.parse({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env });
const taskstream = await startTaskstream(config, { taskModules: benchTaskModules });

const profiler = new CpuProfiler();
const commands = {
  memory: () => settledMemory(),
  startProfile: () => profiler.start(),
  stopProfile: ({ file }: { file: string }) => profiler.stop(file),
};
export type TaskstreamServerCommands = typeof commands;
serveCommands(commands, { url: taskstream.url });

#!/usr/bin/env node
// The `taskstream` command: the only place that reads the command line and the environment.
import { readFileSync } from 'node:fs';
import { parseCommandLine, UsageError, type Command } from './cli/command-line.ts';
import { ConfigError } from './config.ts';
import { renderOpenApiYaml } from './openapi-spec.ts';
import { startTaskstream } from './server.ts';
import { TaskModuleError } from './tasks/task-module-error.ts';

/** A refusal the user can fix: said in one message on stderr, no stack trace, exit 2. */
const isUserError = (error: unknown) =>
  error instanceof ConfigError || error instanceof UsageError || error instanceof TaskModuleError;

function refuse(error: unknown): never {
  if (!isUserError(error)) throw error;
  console.error((error as Error).message);
  process.exit(2);
}

let command: Command;
try {
  command = parseCommandLine(process.argv.slice(2), process.env);
} catch (error) {
  refuse(error);
}

if (command.kind === 'help') {
  process.stdout.write(command.text);
} else if (command.kind === 'version') {
  // src/main.ts from source, dist/src/main.js compiled.
  const manifest = new URL(import.meta.url.endsWith('.ts') ? '../package.json' : '../../package.json', import.meta.url);
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  console.log(version);
} else if (command.kind === 'openapi') {
  const yaml = await renderOpenApiYaml(command.taskModules, command.config).catch(refuse);
  process.stdout.write(yaml);
} else {
  const { config } = command;
  const taskstream = await startTaskstream(config, { taskModules: command.taskModules }).catch(refuse);

  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      // A second signal means "now": skip the grace period.
      if (stopping) process.exit(1);
      stopping = true;
      taskstream.shutdown(config.shutdownGraceMs).then(
        () => process.exit(0),
        (error: unknown) => {
          console.error('shutdown failed', error);
          process.exit(1);
        },
      );
    });
  }
}

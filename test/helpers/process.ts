import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { withTimeout } from './timeout.ts';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Parsed JSON log lines so far (stdout). */
  readonly logs: Record<string, unknown>[];
  readonly stderr: () => string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  kill(): void;
}

/** Calls `onEntry` with each line of `stream` that is a JSON object (a log line); skips the rest. */
export function onJsonLines(stream: Readable, onEntry: (entry: Record<string, unknown>) => void): void {
  let buffered = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // not a log line
      }
      if (entry !== null && typeof entry === 'object') onEntry(entry as Record<string, unknown>);
    }
  });
}

/**
 * Starts the service as a real child process — from source through tsx, or the compiled
 * build — on port 0, and waits for its `listening` log line.
 */
export async function spawnService(
  entry: 'source' | 'dist',
  env: Record<string, string> = {},
  cliArgs: readonly string[] = [],
): Promise<ServiceProcess> {
  const args = [...(entry === 'source' ? ['--import', tsxLoader, 'src/main.ts'] : ['dist/src/main.js']), ...cliArgs];
  const child = spawn(process.execPath, args, {
    cwd: projectRoot,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let onListening: (url: string) => void;
  const listening = new Promise<string>((resolve) => (onListening = resolve));
  onJsonLines(child.stdout!, (entry) => {
    logs.push(entry);
    if (entry.msg === 'listening') onListening(entry.url as string);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  let url: string;
  try {
    url = await withTimeout(
      Promise.race([listening, exited.then((code) => Promise.reject(new Error(`service exited (${code}): ${stderr}`)))]),
      'the service to log "listening"',
      45_000,
    );
  } catch (error) {
    // The caller never gets a handle to kill: a slow start must not leave a server behind.
    child.kill('SIGKILL');
    throw error;
  }
  return { child, url, logs, stderr: () => stderr, exited, kill: () => child.kill('SIGKILL') };
}

/** Runs the command line from source to its end: its exit code and output. */
export async function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', tsxLoader, 'src/main.ts', ...args], {
    cwd: projectRoot,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  try {
    const code = await withTimeout(exited, `taskstream ${args.join(' ')} to exit`, 60_000);
    return { code, stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { MemoryReply, MemoryRequest } from './memory-protocol.ts';
import { withDeadline } from './deadline.ts';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const memoryProbe = pathToFileURL(fileURLToPath(new URL('./memory-probe.mjs', import.meta.url))).href;

/** Every task type: the built-in ones and every test-only fixture (crashes included). */
export function allTaskModules(): string[] {
  const files = (dir: string) =>
    readdirSync(new URL(`../${dir}/`, import.meta.url))
      .filter((name) => name.endsWith('.ts') && name !== 'index.ts')
      .map((name) => `${dir}/${name}`);
  return [...files('workers/tasks'), ...files('test/fixtures')];
}

/** A pino line at error level or above, as the service logged it. */
export interface ErrorLog {
  level: number;
  msg: string;
  line: string;
}

/**
 * The real service entry (src/main.ts) in its own process, loaded as in development (tsx),
 * with `--expose-gc` and the chaos memory probe. Its settings are its own environment
 * variables.
 */
export class ServiceProcess {
  readonly child: ChildProcess;
  readonly url: Promise<string>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<number | string>;
  readonly errorLogs: ErrorLog[] = [];
  #exit: number | string | undefined;
  #terminated = false;
  #stderr = '';
  #nextId = 1;
  readonly #waiting = new Map<number, (reply: MemoryReply) => void>();

  constructor(env: Record<string, string>) {
    this.child = spawn(
      process.execPath,
      ['--expose-gc', '--import', tsxLoader, '--import', memoryProbe, 'src/main.ts'],
      {
        cwd: projectRoot,
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.#exit = code ?? signal ?? 'unknown';
        resolve(this.#exit);
      }),
    );
    this.child.on('message', (reply: MemoryReply) => {
      this.#waiting.get(reply.id)?.(reply);
      this.#waiting.delete(reply.id);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-20_000);
    });
    let onListening: (url: string) => void;
    const listening = new Promise<string>((resolve) => (onListening = resolve));
    let buffered = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        // Only the listening line and errors are read: request and transition lines are many.
        const level = Number(/^\{"level":(\d+)/.exec(line)?.[1] ?? 0);
        if (level >= 50) {
          const entry = JSON.parse(line) as { msg?: string };
          this.errorLogs.push({ level, msg: entry.msg ?? '', line: line.slice(0, 2000) });
        } else if (line.includes('"msg":"listening"')) {
          onListening((JSON.parse(line) as { url: string }).url);
        }
      }
    });
    this.url = withDeadline(
      Promise.race([
        listening,
        this.exited.then((code) => Promise.reject(new Error(`the service exited (${code}) before listening: ${this.#stderr}`))),
      ]),
      'the service to log "listening"',
      60_000,
    );
  }

  /** The exit code or signal, once the process has ended; undefined while it runs. */
  get exitCode(): number | string | undefined {
    return this.#exit;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The service's memory after a forced full collection. */
  memory(): Promise<MemoryReply> {
    const id = this.#nextId++;
    const reply = new Promise<MemoryReply>((resolve) => this.#waiting.set(id, resolve));
    const request: MemoryRequest = { kind: 'memory', id };
    this.child.send(request);
    return withDeadline(reply, 'the service to report its memory', 30_000);
  }

  /** Sends SIGTERM, the graceful stop, once: a second signal means "exit now". */
  terminate(): void {
    if (this.#terminated || this.#exit !== undefined) return;
    this.#terminated = true;
    this.child.kill('SIGTERM');
  }

  /** SIGTERM (if not sent yet); resolves with the exit code, or kills the process after `ms`. */
  async stop(ms: number): Promise<number | string> {
    if (this.#exit !== undefined) return this.#exit;
    this.terminate();
    try {
      return await withDeadline(this.exited, 'the service to exit after SIGTERM', ms);
    } catch (error) {
      this.kill();
      throw error;
    }
  }

  kill(): void {
    if (this.#exit === undefined) this.child.kill('SIGKILL');
  }
}

import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { withDeadline } from './deadline.ts';
import type { Commands, Ready, Reply } from './rpc.ts';

const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Every child still running, so a failed or timed-out run can end them all. */
const running = new Set<ChildProcess>();

export interface ChildOptions {
  /** Environment added to the runner's own. */
  env?: Record<string, string>;
  /** How long the child may take to become ready. */
  readyMs?: number;
}

/**
 * A bench child process (TypeScript through tsx) driven by typed commands over IPC.
 * `--expose-gc` lets servers collect garbage before their RSS is read.
 */
export class BenchChild<C extends Commands, R = unknown> {
  readonly process: ChildProcess;
  readonly ready: Promise<R>;
  readonly #name: string;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  /** Rejects when the process exits, whatever the reason. */
  readonly #exitedPromise: Promise<never>;
  #nextId = 1;
  #exited = false;

  constructor(moduleUrl: URL, { env = {}, readyMs = 120_000 }: ChildOptions = {}) {
    this.#name = fileURLToPath(moduleUrl).slice(projectRoot.length);
    this.process = fork(fileURLToPath(moduleUrl), [], {
      cwd: projectRoot,
      execArgv: ['--import', tsxLoader, '--expose-gc'],
      env: { ...process.env, ...env },
      // A child's output (the service's log lines) goes to stderr: stdout is the report's.
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    running.add(this.process);
    let onReady: (ready: R) => void;
    const readyMessage = new Promise<R>((resolve) => (onReady = resolve));
    const exited = new Promise<never>((_, reject) => {
      this.process.once('exit', (code, signal) => {
        this.#exited = true;
        running.delete(this.process);
        const error = new Error(`${this.#name} exited (${code ?? signal})`);
        for (const { reject: fail } of this.#pending.values()) fail(error);
        this.#pending.clear();
        reject(error);
      });
    });
    exited.catch(() => {}); // observed through ready and call()
    this.#exitedPromise = exited;
    this.process.on('message', (message: Reply | Ready) => {
      if ('ready' in message) return onReady(message.ready as R);
      const waiter = this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${this.#name}: ${message.error}`));
    });
    this.ready = withDeadline(Promise.race([readyMessage, exited]), `${this.#name} to start`, readyMs);
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Runs a command in the child; fails if it takes longer than `ms`. */
  call<K extends keyof C & string>(command: K, args: Parameters<C[K]>[0], ms: number): Promise<Awaited<ReturnType<C[K]>>> {
    if (this.#exited) return Promise.reject(new Error(`${this.#name} has exited`));
    const id = this.#nextId++;
    const reply = new Promise<Awaited<ReturnType<C[K]>>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.process.send({ id, command, args });
    return withDeadline(reply, `${this.#name} ${command}`, ms).finally(() => this.#pending.delete(id));
  }

  /**
   * Asks the child to exit (it exits when its IPC channel closes) and kills it if it has
   * not after `graceMs`. Idempotent.
   */
  async close(graceMs = 5000): Promise<void> {
    if (this.#exited) return;
    if (this.process.connected) this.process.disconnect();
    const killer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.#exitedPromise.catch(() => {});
    clearTimeout(killer);
  }
}

/** Kills every child still running: the last resort of a failed or timed-out run. */
export function killAllChildren(): void {
  for (const child of running) child.kill('SIGKILL');
}

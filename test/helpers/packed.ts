import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onJsonLines, projectRoot } from './process.ts';
import { withTimeout } from './timeout.ts';

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** What the repository would publish, built in a copy so no other test's dist/ is touched. */
/** What a checkout holds that the build and the package need. */
export const SOURCES = ['package.json', 'README.md', 'LICENSE', 'tsconfig.json', 'tsconfig.build.json', 'src', 'workers', 'client', 'web', 'scripts'];

export interface PackedProject {
  /** The temporary project the tarball was installed into. */
  readonly dir: string;
  readonly tarball: string;
  /** Bytes of the tarball, and of node_modules/taskstream once installed. */
  readonly packedBytes: number;
  readonly installedBytes: number;
  remove(): void;
}

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  dev?: boolean;
  optional?: boolean;
  [key: string]: unknown;
}

/**
 * The consumer's package.json and package-lock.json: the tarball plus `extra` packages, with
 * every package either needs taken from our own lockfile (same versions, same layout).
 */
function writeConsumerManifest(dir: string, tarball: string, extra: readonly string[]) {
  const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packed = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as LockEntry & { bin: Record<string, string> };
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  const dependencies: Record<string, string> = { taskstream: `file:${tarball}` };
  for (const name of extra) dependencies[name] = lock.packages[`node_modules/${name}`]!.version!;

  const packages: Record<string, LockEntry> = {
    '': { name: manifest.name, dependencies },
    'node_modules/taskstream': {
      version: packed.version,
      resolved: `file:${tarball}`,
      integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
      dependencies: packed.dependencies,
      optionalDependencies: packed.optionalDependencies,
      bin: packed.bin,
      engines: packed.engines,
    },
  };
  // Node's resolution, as npm lays packages out: from `path`, up to the top node_modules.
  const locate = (from: string, name: string): string | undefined => {
    let base = from;
    for (;;) {
      const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (base === '') return undefined;
      const cut = base.lastIndexOf('/node_modules/');
      base = cut === -1 ? '' : base.slice(0, cut);
    }
  };
  const queue = [...Object.keys(packed.dependencies ?? {}), ...Object.keys(packed.optionalDependencies ?? {}), ...extra].map((name) => locate('', name)!);
  while (queue.length > 0) {
    const path = queue.shift()!;
    if (packages[path] || !lock.packages[path]) continue;
    const { dev: _dev, ...entry } = lock.packages[path]!;
    packages[path] = entry;
    const wanted = { ...entry.dependencies, ...entry.optionalDependencies };
    for (const [name] of Object.entries(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[name]?.optional) wanted[name] = '*';
    }
    for (const name of Object.keys(wanted)) {
      const found = locate(path, name);
      if (found) queue.push(found);
    }
  }
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ ...manifest, dependencies }, null, 2)}\n`);
  writeFileSync(
    join(dir, 'package-lock.json'),
    `${JSON.stringify({ name: manifest.name, lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
  );
}

/**
 * Builds and packs the package (`npm pack`) from a copy of the repository, then installs the
 * tarball into a fresh project holding `fixture` (test/fixtures/consumer) with npm's
 * `--offline`: everything comes from the tarball and the npm cache, nothing from the network.
 */
export async function packAndInstall(fixture: string, extraDependencies: readonly string[] = []): Promise<PackedProject> {
  const work = mkdtempSync(join(tmpdir(), 'taskstream-pack-'));
  const stage = join(work, 'stage');
  for (const entry of SOURCES) {
    try {
      cpSync(join(projectRoot, entry), join(stage, entry), { recursive: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  symlinkSync(join(projectRoot, 'node_modules'), join(stage, 'node_modules'), 'dir');
  // `npm pack` runs our prepack (the build); it never runs at a user's install.
  await run(npm, ['pack', '--silent', '--pack-destination', work], { cwd: stage, maxBuffer: 16 * 1024 * 1024 });
  const tarball = join(work, readdirSync(work).find((name) => name.endsWith('.tgz'))!);

  const dir = join(work, 'consumer');
  cpSync(fixture, dir, { recursive: true });
  writeConsumerManifest(dir, tarball, extraDependencies);
  // npm ci's cache holds every tarball of our lock but no registry metadata, so the consumer
  // gets a lockfile cut from ours: npm then needs nothing but the cache and the tarball.
  await run(npm, ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
  const du = async (path: string) => Number((await run('du', ['-sb', path])).stdout.split('\t')[0]);
  return {
    dir,
    tarball,
    packedBytes: await du(tarball),
    installedBytes: await du(join(dir, 'node_modules', 'taskstream')),
    remove: () => rmSync(work, { recursive: true, force: true }),
  };
}

export interface ConsumerProcess {
  readonly child: ChildProcess;
  /** The first JSON line of stdout with a `url` (the consumer's own) or a `listening` log. */
  readonly url: string;
  readonly stderr: () => string;
  readonly exited: Promise<number | string>;
  stop(): Promise<number | string>;
}

/** Starts a command in the consumer project and waits for it to print its URL. */
export async function startConsumer(dir: string, command: string, args: readonly string[]): Promise<ConsumerProcess> {
  // Its own process group: npx (or a shell) starts the service as a child of its own, and
  // stopping the group reaches that child too, so no service outlives the test.
  const child = spawn(command, args, { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // the group is gone
    }
  };
  let stderr = '';
  let onUrl: (url: string) => void;
  const found = new Promise<string>((resolve) => (onUrl = resolve));
  onJsonLines(child.stdout!, (entry) => {
    if (typeof entry.url === 'string') onUrl(entry.url);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let url: string;
  try {
    url = await withTimeout(
      Promise.race([found, exited.then((code) => Promise.reject(new Error(`${command} ${args.join(' ')} exited (${code}): ${stderr}`)))]),
      `${args.join(' ')} to print its URL`,
      30_000,
    );
  } catch (error) {
    signalGroup('SIGKILL');
    throw error;
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) signalGroup('SIGTERM');
    const how = await withTimeout(exited, `${args.join(' ')} to exit`, 15_000).catch(() => 'killed' as const);
    // Whatever is left of the group (a service that ignored SIGTERM) goes now.
    signalGroup('SIGKILL');
    return how;
  };
  return { child, url, stderr: () => stderr, exited, stop };
}

/** Runs a command in the consumer project to its end. */
export async function runInConsumer(dir: string, command: string, args: readonly string[], timeoutMs = 60_000) {
  const child = spawn(command, args, { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  try {
    const code = await withTimeout(exited, `${command} ${args.join(' ')} to exit`, timeoutMs);
    return { code, stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export { writeFileSync };

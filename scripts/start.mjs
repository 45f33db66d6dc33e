// Runs the compiled service, building it first when dist/ is missing or older than a source.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const entry = new URL('dist/src/main.js', root);

function newestSource() {
  let newest = 0;
  for (const dir of ['src', 'workers', 'client']) {
    for (const file of readdirSync(new URL(dir, root), { recursive: true, encoding: 'utf8' })) {
      newest = Math.max(newest, statSync(new URL(`${dir}/${file}`, root)).mtimeMs);
    }
  }
  for (const file of ['openapi.yaml', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) {
    newest = Math.max(newest, statSync(new URL(file, root)).mtimeMs);
  }
  return newest;
}

function builtAt() {
  try {
    return statSync(entry).mtimeMs;
  } catch {
    return 0; // not built yet
  }
}

/**
 * Several instances started at once from one checkout (the README's Redis example) must not
 * build over each other: one builds, the others wait for it and then find dist/ fresh.
 */
const lock = new URL('.build.lock/', root);
const pidFile = new URL('pid', lock);
function holderAlive() {
  let pid;
  try {
    pid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    return true; // just taken: its pid is on its way
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}
function withBuildLock(build) {
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      if (!holderAlive()) rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    writeFileSync(pidFile, String(process.pid));
    build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (builtAt() < newestSource()) {
  withBuildLock(() => {
    if (builtAt() >= newestSource()) return; // another instance built it meanwhile
    console.error('building dist/ …');
    execFileSync(process.execPath, [new URL('build.mjs', import.meta.url).pathname], { stdio: 'inherit' });
  });
}
await import(entry.href);

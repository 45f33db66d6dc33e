// Runs the compiled service, building it first when dist/ is missing or older than a source.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';

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

let built = 0;
try {
  built = statSync(entry).mtimeMs;
} catch {
  // not built yet
}
if (built < newestSource()) {
  console.error('building dist/ …');
  execFileSync(process.execPath, [new URL('build.mjs', import.meta.url).pathname], { stdio: 'inherit' });
}
await import(entry.href);

// Compiles src/ and workers/ to dist/ and copies what the compiled service reads at run time.
import { execFileSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(new URL('dist', root), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
// The compiled app reads the committed spec next to itself, at dist/openapi.yaml.
copyFileSync(new URL('openapi.yaml', root), new URL('dist/openapi.yaml', root));

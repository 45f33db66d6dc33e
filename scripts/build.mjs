// Compiles src/, workers/ and client/ to dist/ with type declarations, and copies in what the
// compiled package serves or needs beside its JavaScript: the client's generated types and
// the few Swagger UI files /docs loads (so swagger-ui-dist is no runtime dependency).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });

// tsc does not copy declaration files: the client's index.d.ts imports this one.
copyFileSync(join(root, 'client/schema.d.ts'), join(root, 'dist/client/schema.d.ts'));

// tsc rewrites `./x.ts` to `./x.js` in JavaScript but not in declarations: a consumer's
// compiler resolves `./x.js` to the x.d.ts beside it.
for (const file of readdirSync(join(root, 'dist'), { recursive: true, encoding: 'utf8' })) {
  if (!file.endsWith('.d.ts')) continue;
  const path = join(root, 'dist', file);
  const text = readFileSync(path, 'utf8');
  const rewritten = text.replace(/((?:from|import\()\s*['"])(\.{1,2}\/[^'"]+?)\.(?:d\.)?ts(['"])/g, '$1$2.js$3');
  if (rewritten !== text) writeFileSync(path, rewritten);
}

// Must match SWAGGER_UI_ASSETS in src/routes/docs.ts; the licence travels with the files.
const swaggerUi = dirname(require.resolve('swagger-ui-dist/package.json'));
mkdirSync(join(root, 'dist/swagger-ui'), { recursive: true });
for (const file of ['swagger-ui.css', 'swagger-ui-bundle.js', 'index.css', 'favicon-32x32.png', 'LICENSE', 'NOTICE']) {
  try {
    copyFileSync(join(swaggerUi, file), join(root, 'dist/swagger-ui', file));
  } catch (error) {
    if (!['LICENSE', 'NOTICE'].includes(file) || error.code !== 'ENOENT') throw error;
  }
}

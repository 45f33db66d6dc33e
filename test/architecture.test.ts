import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(dir, file));
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)].map((match) => match[1]!);
}

function resolved(file: string, specifier: string): string {
  return specifier.startsWith('.') ? relative(root, join(root, file, '..', specifier)) : specifier;
}

describe('import boundaries', () => {
  it('workers import only zod, node built-ins and other worker files', () => {
    for (const file of sources('workers')) {
      for (const specifier of importsOf(file)) {
        const target = resolved(file, specifier);
        const allowed = target === 'zod' || target.startsWith('node:') || target.startsWith('workers/');
        expect(allowed, `${file} imports ${specifier}`).toBe(true);
      }
    }
  });

  it('only src/backends.ts picks implementations of the store, broker and executor', () => {
    // An implementation names its mechanism: memory-task-store.ts, piscina-executor.ts, redis-broker.ts, …
    const implementations = /^src\/(store|broker|executor)\/(?!task-store|broker|executor)[\w-]+\.ts$/;
    for (const file of sources('src')) {
      if (file === 'src/backends.ts' || implementations.test(file)) continue;
      for (const specifier of importsOf(file)) {
        expect(implementations.test(resolved(file, specifier)), `${file} imports ${specifier}`).toBe(false);
      }
    }
  });

  it('the service and its parts never import the HTTP layer', () => {
    const core = sources('src').filter((file) => /^src\/(service|reaper|end-waiters|idempotency|clock|events|errors|task-record|config)\.ts$|^src\/(store|broker|executor|tasks)\//.test(file));
    expect(core.length).toBeGreaterThan(8);
    for (const file of core) {
      for (const specifier of importsOf(file)) {
        const target = resolved(file, specifier);
        expect(/^src\/(routes|http|app)|hono/.test(target), `${file} imports ${specifier}`).toBe(false);
      }
    }
  });
});

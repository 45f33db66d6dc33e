import { readdirSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TaskModuleError } from './task-module-error.ts';

/** Extensions of task modules found in a directory; `.d.ts` files are declarations, not modules. */
const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.ts']);
const isModuleFile = (name: string) => MODULE_EXTENSIONS.has(extname(name)) && !name.endsWith('.d.ts');

/** Where task modules are: a file or directory path (relative to `cwd`), or a URL. */
export type TaskModuleSource = string | URL;

/**
 * The module URLs of each source, in order: a file is itself; a directory is every `.js`,
 * `.mjs` or `.ts` file directly inside it, sorted by name. A missing path, or a directory
 * with no module, is a TaskModuleError naming it.
 */
export function resolveTaskModules(sources: readonly TaskModuleSource[], cwd: string = process.cwd()): URL[] {
  const urls: URL[] = [];
  for (const source of sources) {
    if (source instanceof URL && source.protocol !== 'file:') {
      urls.push(source);
      continue;
    }
    const path = source instanceof URL ? fileURLToPath(source) : resolve(cwd, source);
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (error) {
      throw new TaskModuleError(path, 'no such file or directory', { cause: error });
    }
    if (!isDirectory) {
      urls.push(pathToFileURL(path));
      continue;
    }
    const files = readdirSync(path, { withFileTypes: true })
      .filter((entry) => entry.isFile() && isModuleFile(entry.name))
      .map((entry) => entry.name)
      .sort();
    if (files.length === 0) throw new TaskModuleError(path, 'the directory holds no .js, .mjs or .ts task module');
    urls.push(...files.map((name) => pathToFileURL(resolve(path, name))));
  }
  return urls;
}

/** A module URL as a user knows it: the file path for a local file. */
export function displayName(url: URL | string): string {
  const parsed = typeof url === 'string' ? new URL(url) : url;
  return parsed.protocol === 'file:' ? fileURLToPath(parsed) : parsed.href;
}

/** TypeScript sources need a loader in the main thread and in worker threads. */
export const isTypeScript = (url: URL | string) => /\.[cm]?ts$/.test(typeof url === 'string' ? url : url.pathname);

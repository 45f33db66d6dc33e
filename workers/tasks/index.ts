// The built-in task types, by module URL. The extension follows this file's own, so the
// list works from source (.ts) and from a compiled build (.js) alike.
const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

export const builtInTaskModules: readonly URL[] = ['sample', 'primes', 'csv-stats', 'batch'].map(
  (name) => new URL(`./${name}${extension}`, import.meta.url),
);

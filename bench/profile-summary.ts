// Summarizes a V8 CPU profile (from `BENCH_PROFILE=1 npm run bench`, which passes
// --cpu-prof to the service's process): where the time went, by function and by file.
// Usage: tsx bench/profile-summary.ts reports/profiles/<file>.cpuprofile [rows]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

// Piped into `head`, stop quietly once the reader has had enough.
process.stdout.on('error', () => process.exit(0));

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [rows]');
  process.exit(2);
}
const rows = Number(rowsArg ?? 25);
const root = fileURLToPath(new URL('..', import.meta.url));
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const where = (url: string) => {
  if (!url) return '(native)';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith(root) ? relative(root, path) : path;
};

/** Self time per profile node, from the sampled node ids and the gaps between samples. */
const selfUs = new Map<number, number>();
profile.samples.forEach((id, index) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
const totalUs = [...selfUs.values()].reduce((sum, us) => sum + us, 0);

const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const label = (node: ProfileNode) => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'}  ${where(url)}${url ? `:${lineNumber + 1}` : ''}`;
};

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  byFunction.set(label(node), (byFunction.get(label(node)) ?? 0) + us);
  const fileKey = where(node.callFrame.url).replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, 'node_modules/$1');
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}

/** Time in a function and everything it called; a function on the stack twice counts once. */
const inclusive = new Map<string, number>();
const walk = (id: number, onStack: Set<string>): number => {
  const node = nodes.get(id)!;
  let us = selfUs.get(id) ?? 0;
  const key = label(node);
  const entered = !onStack.has(key);
  if (entered) onStack.add(key);
  for (const child of node.children ?? []) us += walk(child, onStack);
  if (entered) {
    onStack.delete(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
  return us;
};
walk(profile.nodes[0]!.id, new Set());

const print = (title: string, entries: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${((100 * us) / totalUs).toFixed(1).padStart(5)} %  ${key}`);
  }
};
console.log(`${file}: ${(totalUs / 1e6).toFixed(2)} s sampled`);
print('self time by function', byFunction);
print('self time by file or package', byFile);
print('total time (self and callees) by function', inclusive);

// Drives a POST with wrk (Debian package `wrk`): a C load generator that, unlike a Node
// client, is not the limit on this machine. Reports its own CPU use so a run can tell.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const wrkAvailable = (): boolean => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk --version exits 1 after printing its usage: found.
    return (error as { status?: number }).status === 1;
  }
};

export interface WrkResult {
  rate: number;
  requests: number;
  /** Answers that were not 2xx/3xx: the figure is void if any. */
  non2xx: number;
  /** wrk's own CPU use over the run, in cores (1 = one core busy all the time). */
  clientCores: number;
}

const luaString = (text: string) => `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

/** POSTs `body` to `url` from `connections` connections on one wrk thread for `seconds`. */
export async function wrkPost(url: string, body: string, connections: number, seconds: number): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-wrk-'));
  const script = join(dir, 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${luaString(body)}\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  try {
    // The shell reads its own children's CPU time (cutime + cstime) once wrk has exited.
    const command = `wrk -t1 -c${connections} -d${seconds}s -s '${script}' '${url}'; echo "stat: $(cat /proc/$$/stat)"`;
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}: ${text}`))));
    });
    const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
    const requests = Number(/(\d+) requests in/.exec(output)?.[1]);
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
    const stat = /stat: (.*)/.exec(output)?.[1] ?? '';
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // cutime and cstime are stat fields 16 and 17, at 13 and 14 after the state field.
    const childTicks = Number(fields[13]) + Number(fields[14]);
    if (!Number.isFinite(rate)) throw new Error(`could not read wrk's output: ${output}`);
    return { rate, requests, non2xx, clientCores: childTicks / 100 / seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** Soft limit on open files, which bounds how many streams one process can hold. */
  openFilesLimit: number;
  /**
   * 1-minute load average when the run started: above the core count, other processes
   * were competing for the CPU and every figure is less reliable.
   */
  loadAverage: number;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  let openFilesLimit = Number.NaN;
  try {
    openFilesLimit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  } catch {
    // not a POSIX shell: left unknown
  }
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    openFilesLimit,
    loadAverage: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

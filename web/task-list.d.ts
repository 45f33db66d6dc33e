// Types of web/task-list.js, for the tests that import it.
import type { TaskEntry } from './task-state.js';

export interface TaskChange {
  taskId: string;
  structural: boolean;
}
export declare const newestFirst: (a: string, b: string) => number;
export declare const matchesFilter: (status: string, filter: string) => boolean;
export declare class TaskList {
  truncated: boolean;
  get size(): number;
  get loading(): boolean;
  get(taskId: string): TaskEntry | undefined;
  has(taskId: string): boolean;
  ids(): string[];
  idsNewestFirst(): string[];
  counts(): Record<string, number>;
  countShown(filter: string): number;
  insert(snapshot: Record<string, any>, lastSeq?: number): boolean;
  forget(taskId: string): void;
  receive(event: Record<string, any>): TaskChange | null;
  apply(event: Record<string, any>): TaskChange | null;
  startLoad(): number;
  finishLoad(generation: number, page: { tasks: Record<string, any>[]; next_cursor: string | null } | null): boolean;
  clear(): void;
}

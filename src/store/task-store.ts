import type { TaskStatus } from '../events.ts';
import type { TaskRecord } from '../task-record.ts';

export type { TaskRecord };

export interface TaskQuery {
  status?: TaskStatus | undefined;
  type?: string | undefined;
  /** Every one of these labels must match. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Only this owner's tasks; every task when undefined. */
  owner?: string | undefined;
  limit: number;
  /** Only tasks older than this one (ids sort by creation). */
  before?: string | undefined;
}

/** Holds task records. Implementations: MemoryTaskStore. */
export interface TaskStore {
  insert(record: TaskRecord): void;
  get(taskId: string): TaskRecord | undefined;
  /** Applies a partial update and returns the new record, or undefined if it is gone. */
  update(taskId: string, changes: Partial<TaskRecord>): TaskRecord | undefined;
  delete(taskId: string): boolean;
  /** Newest first; `hasMore` says whether another page follows. */
  list(query: TaskQuery): { tasks: TaskRecord[]; hasMore: boolean };
  /** How many tasks are in each status: of one owner, or of everyone when undefined. */
  counts(owner?: string): Record<TaskStatus, number>;
  readonly size: number;
}

import type { TaskStatus } from '../events.ts';
import type { TaskQuery, TaskRecord, TaskStore } from './task-store.ts';

/** Task records in a Map. Insertion order is creation order, since ids are UUIDv7. */
export class MemoryTaskStore implements TaskStore {
  readonly #records = new Map<string, TaskRecord>();
  /** Kept in step with every insert, status change and delete. */
  readonly #counts: Record<TaskStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };

  insert(record: TaskRecord): void {
    this.#records.set(record.task_id, record);
    this.#counts[record.status]++;
  }

  get(taskId: string): TaskRecord | undefined {
    return this.#records.get(taskId);
  }

  update(taskId: string, changes: Partial<TaskRecord>): TaskRecord | undefined {
    const current = this.#records.get(taskId);
    if (!current) return undefined;
    const next = { ...current, ...changes };
    this.#records.set(taskId, next);
    if (next.status !== current.status) {
      this.#counts[current.status]--;
      this.#counts[next.status]++;
    }
    return next;
  }

  delete(taskId: string): boolean {
    const record = this.#records.get(taskId);
    if (!record) return false;
    this.#records.delete(taskId);
    this.#counts[record.status]--;
    return true;
  }

  list({ status, type, labels, limit, before }: TaskQuery): { tasks: TaskRecord[]; hasMore: boolean } {
    const all = [...this.#records.values()];
    const wanted = labels ? Object.entries(labels) : [];
    const tasks: TaskRecord[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const record = all[i]!;
      if (before !== undefined && record.task_id >= before) continue;
      if (status !== undefined && record.status !== status) continue;
      if (type !== undefined && record.type !== type) continue;
      if (wanted.some(([key, value]) => record.labels[key] !== value)) continue;
      if (tasks.length === limit) return { tasks, hasMore: true };
      tasks.push(record);
    }
    return { tasks, hasMore: false };
  }

  counts(): Record<TaskStatus, number> {
    return { ...this.#counts };
  }

  get size(): number {
    return this.#records.size;
  }
}

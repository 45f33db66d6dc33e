import type { TaskQuery, TaskRecord, TaskStore } from './task-store.ts';

/** Task records in a Map. Insertion order is creation order, since ids are UUIDv7. */
export class MemoryTaskStore implements TaskStore {
  readonly #records = new Map<string, TaskRecord>();

  insert(record: TaskRecord): void {
    this.#records.set(record.task_id, record);
  }

  get(taskId: string): TaskRecord | undefined {
    return this.#records.get(taskId);
  }

  update(taskId: string, changes: Partial<TaskRecord>): TaskRecord | undefined {
    const current = this.#records.get(taskId);
    if (!current) return undefined;
    const next = { ...current, ...changes };
    this.#records.set(taskId, next);
    return next;
  }

  delete(taskId: string): boolean {
    return this.#records.delete(taskId);
  }

  list({ status, type, limit, before }: TaskQuery): { tasks: TaskRecord[]; hasMore: boolean } {
    const all = [...this.#records.values()];
    const tasks: TaskRecord[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const record = all[i]!;
      if (before !== undefined && record.task_id >= before) continue;
      if (status !== undefined && record.status !== status) continue;
      if (type !== undefined && record.type !== type) continue;
      if (tasks.length === limit) return { tasks, hasMore: true };
      tasks.push(record);
    }
    return { tasks, hasMore: false };
  }

  get size(): number {
    return this.#records.size;
  }
}

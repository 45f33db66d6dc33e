import type { TaskStatus } from '../events.ts';
import type { TaskQuery, TaskRecord, TaskStore } from './task-store.ts';

/** Task records in a Map. Insertion order is creation order, since ids are UUIDv7. */
export class MemoryTaskStore implements TaskStore {
  readonly #records = new Map<string, TaskRecord>();
  /** Kept in step with every insert, status change and delete: in all, and per owner. */
  readonly #counts = emptyCounts();
  readonly #ownerCounts = new Map<string, Record<TaskStatus, number>>();

  insert(record: TaskRecord): void {
    this.#records.set(record.task_id, record);
    this.#count(record, 1);
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
      this.#count(current, -1);
      this.#count(next, 1);
    }
    return next;
  }

  delete(taskId: string): boolean {
    const record = this.#records.get(taskId);
    if (!record) return false;
    this.#records.delete(taskId);
    this.#count(record, -1);
    return true;
  }

  list({ status, type, labels, owner, limit, before }: TaskQuery): { tasks: TaskRecord[]; hasMore: boolean } {
    const all = [...this.#records.values()];
    const wanted = labels ? Object.entries(labels) : [];
    const tasks: TaskRecord[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const record = all[i]!;
      if (before !== undefined && record.task_id >= before) continue;
      if (status !== undefined && record.status !== status) continue;
      if (type !== undefined && record.type !== type) continue;
      if (owner !== undefined && record.owner !== owner) continue;
      if (wanted.some(([key, value]) => record.labels[key] !== value)) continue;
      if (tasks.length === limit) return { tasks, hasMore: true };
      tasks.push(record);
    }
    return { tasks, hasMore: false };
  }

  counts(owner?: string): Record<TaskStatus, number> {
    if (owner === undefined) return { ...this.#counts };
    return { ...(this.#ownerCounts.get(owner) ?? emptyCounts()) };
  }

  get size(): number {
    return this.#records.size;
  }

  #count(record: TaskRecord, delta: 1 | -1): void {
    this.#counts[record.status] += delta;
    if (record.owner === null) return;
    let counts = this.#ownerCounts.get(record.owner);
    if (!counts) this.#ownerCounts.set(record.owner, (counts = emptyCounts()));
    counts[record.status] += delta;
  }
}

const emptyCounts = (): Record<TaskStatus, number> => ({ queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });

// The tasks the dashboard shows, kept up to date from a listing and the all-tasks stream.
// Pure (no DOM, no network), so it is tested without a browser; task-list-view.js draws it.

import { applyTaskEvent, entryOf, SEQ_UNKNOWN, STATUSES } from './task-state.js';

/** Ids of removed tasks remembered, so a late answer cannot bring one back. */
const REMOVED_KEPT = 5000;

/** UUIDv7 ids sort by creation: newest first is descending id order. */
export const newestFirst = (a, b) => (a < b ? 1 : a > b ? -1 : 0);

/** Whether a task of `status` shows under the status filter `filter` (`all` or a status). */
export const matchesFilter = (status, filter) => filter === 'all' || status === filter;

/**
 * Invariant: the map holds what the page shows. Each entry keeps the task's snapshot and the
 * seq of the last event applied to it; an event with a seq at or below it is a duplicate.
 * While a listing loads, stream events wait and are applied on top of it, in order.
 */
export class TaskList {
  /** task_id → { task, lastSeq } */
  #tasks = new Map();
  #removed = new Set();
  /** Stream events that arrive while the listing loads; null when none loads. */
  #pending = null;
  /** Bumped by every load and by clear(): an older load's answer is not used. */
  #generation = 0;
  /** Whether the service had more tasks than the listing asked for. */
  truncated = false;

  get size() {
    return this.#tasks.size;
  }

  /** Whether a listing is loading (stream events then wait for it). */
  get loading() {
    return this.#pending !== null;
  }

  get(taskId) {
    return this.#tasks.get(taskId);
  }

  has(taskId) {
    return this.#tasks.has(taskId);
  }

  ids() {
    return [...this.#tasks.keys()];
  }

  idsNewestFirst() {
    return this.ids().sort(newestFirst);
  }

  /** Tasks per status. */
  counts() {
    const counts = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const { task } of this.#tasks.values()) counts[task.status] = (counts[task.status] ?? 0) + 1;
    return counts;
  }

  /** Tasks shown under `filter`. */
  countShown(filter) {
    return filter === 'all' ? this.size : this.counts()[filter] ?? 0;
  }

  /** Adds a task from a snapshot unless the list already has it (it then knows better), or saw it go. */
  insert(snapshot, lastSeq = SEQ_UNKNOWN) {
    if (this.#tasks.has(snapshot.task_id) || this.#removed.has(snapshot.task_id)) return false;
    this.#tasks.set(snapshot.task_id, entryOf(snapshot, lastSeq));
    return true;
  }

  /** Drops a task and remembers it went. */
  forget(taskId) {
    this.#tasks.delete(taskId);
    this.#removed.add(taskId);
    if (this.#removed.size > REMOVED_KEPT) this.#removed.delete(this.#removed.values().next().value);
  }

  /**
   * Takes one stream event: held while a listing loads, applied otherwise. Answers what
   * changed, `{ taskId, structural }` (structural: a row comes or goes), or null.
   */
  receive(event) {
    if (this.#pending) {
      this.#pending.push(event);
      return null;
    }
    return this.apply(event);
  }

  /** Applies one stream event: task_created and task_removed here, the rest by applyTaskEvent. */
  apply(event) {
    const { event_type: type, task_id: taskId, data } = event;
    if (type === 'task_created') return this.insert(data.task, 0) ? { taskId, structural: true } : null;
    if (type === 'task_removed') {
      const shown = this.#tasks.has(taskId);
      this.forget(taskId);
      return shown ? { taskId, structural: true } : null;
    }
    const entry = this.#tasks.get(taskId);
    // Not in the list: older than the newest tasks the listing had.
    if (!entry) return null;
    return applyTaskEvent(entry, event) ? { taskId, structural: false } : null;
  }

  /** Starts loading a listing: stream events wait from now on. Answers the load's number. */
  startLoad() {
    this.#pending ??= [];
    return ++this.#generation;
  }

  /**
   * Ends load `generation` with the listing's page (`{ tasks, next_cursor }`), or null when
   * it failed (the list then keeps what it had). The waiting events are applied on top.
   * Answers false, changing nothing, when a newer load or a clear() replaced this one.
   */
  finishLoad(generation, page) {
    if (generation !== this.#generation) return false;
    if (page) {
      this.#tasks = new Map();
      for (const snapshot of page.tasks) this.insert(snapshot);
      this.truncated = page.next_cursor !== null;
    }
    const events = this.#pending ?? [];
    this.#pending = null;
    for (const event of events) this.apply(event);
    return true;
  }

  /** Forgets every task, and any load or event still on its way for them. */
  clear() {
    this.#generation++;
    this.#pending = null;
    this.#tasks = new Map();
    this.#removed.clear();
    this.truncated = false;
  }
}
